"""Memory-budgeted convolution algorithms (systems.convalgo): exactness, budgeted choice, caching, applying."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasagent.core import NasagentError
from nasagent.systems import convalgo as ca

GEOMETRIES = [
    dict(stride=1, padding=1, dilation=1),
    dict(stride=2, padding=1, dilation=1),
    dict(stride=1, padding=(2, 0), dilation=(2, 1)),
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def batch(n=6, hw=12):
    return torch.randn(n, 3, hw, hw, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("geom", GEOMETRIES, ids=["s1", "s2", "dil"])
@pytest.mark.parametrize("name", ca.algorithm_names(5, chunks=(2,)) + ["fft-chunked1"])
def test_each_algorithm_equals_conv2d_in_outputs_and_gradients(name, geom):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 9, 11, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    ref = F.conv2d(x, w, b, **geom)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=gen)
    if name.startswith("fft") and geom != GEOMETRIES[0]:
        with pytest.raises(NasagentError, match="stride 1"):
            ca.conv2d(x, w, b, **geom, forward=name)
        return
    out = ca.conv2d(x, w, b, **geom, forward=name)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(torch.autograd.grad(out, (x, w, b), g), torch.autograd.grad(ref, (x, w, b), g)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_float32_fft_forward_and_im2col_backward_mix():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 6, 10, 10, generator=gen, requires_grad=True)
    w = torch.randn(5, 6, 5, 5, generator=gen, requires_grad=True)
    ref = F.conv2d(x, w, padding=2)
    out = ca.conv2d(x, w, padding=2, forward="fft", backward="im2col-chunked3")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    g = torch.randn(ref.shape, generator=gen)
    for got, want in zip(torch.autograd.grad(out, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


def test_unsupported_settings_and_bad_names_raise_clear_errors():
    x, w = torch.randn(2, 4, 6, 6), torch.randn(4, 2, 3, 3)
    with pytest.raises(NasagentError, match="groups=1"):
        ca.conv2d(x, w, groups=2, forward="im2col")
    torch.testing.assert_close(ca.conv2d(x, w, groups=2, forward="native"), F.conv2d(x, w, groups=2))
    with pytest.raises(NasagentError, match="unknown convolution algorithm"):
        ca.conv2d(x, w, groups=2, forward="winograd")
    with pytest.raises(NasagentError, match="chunk >= 1"):
        ca.get_algorithm("im2col-chunked0")
    with pytest.raises(NasagentError, match="channels"):
        ca.conv2d(torch.randn(2, 3, 6, 6), torch.randn(4, 2, 3, 3), forward="native")
    with pytest.raises(NasagentError, match="numeric padding"):
        ca.conv2d(x, w, padding="same")
    with pytest.raises(NasagentError, match="4-D"):
        ca.conv2d(torch.randn(3, 6, 6), torch.randn(4, 3, 3, 3))


def test_workspace_is_measured_and_im2col_matches_its_column_matrix():
    problem = ca.LayerProblem((8, 8, 16, 16), (16, 8, 3, 3), False, ca.ConvGeometry(padding=(1, 1)))
    bench = ca.Benchmarker(reps=1)
    whole = bench.measure(problem, "im2col", "forward")["workspace"]
    cols = ca.im2col_workspace_bytes(problem.x_shape, problem.w_shape, problem.geom)
    assert cols <= whole <= 1.25 * cols  # the column matrix, plus at most small matmul temporaries
    chunk1 = bench.measure(problem, "im2col-chunked1", "forward")["workspace"]
    assert chunk1 < whole / 4  # a batch of 8 in chunks of 1 needs far less
    assert not bench.measure(ca.LayerProblem((2, 4, 6, 6), (4, 2, 3, 3), False, ca.ConvGeometry(groups=2)), "fft", "forward")["supported"]


def test_tight_budget_picks_less_workspace_and_never_exceeds_it():
    model, x = small_net(), batch()
    bench = ca.Benchmarker(reps=1)
    loose = ca.select_algorithms(model, x, None, benchmarker=bench)
    assert set(loose) == {"0", "3", "5"}
    tight_budget, lowered = {}, 0
    for name, ch in loose.items():
        phases = []
        for phase in ca.PHASES:
            smallest = min(c["workspace"] for c in ch.candidates if c["phase"] == phase)
            if ch.workspace[phase] > smallest:  # room to go lower: a budget just below the loose choice
                phases.append(ch.workspace[phase] - 1)
                lowered += 1
            else:
                phases.append(ch.workspace[phase])
        tight_budget[name] = tuple(phases)
    assert lowered > 0
    runs = bench.runs
    tight = ca.select_algorithms(model, x, tight_budget, benchmarker=bench)
    assert bench.runs == runs  # every figure came from the cache
    for name, ch in tight.items():
        assert not ch.fallback
        for i, phase in enumerate(ca.PHASES):
            assert ch.workspace[phase] <= tight_budget[name][i]
            assert ch.workspace[phase] <= loose[name].workspace[phase]
            # the fastest of the candidates that fit
            fits = [c for c in ch.candidates if c["phase"] == phase and c["workspace"] <= tight_budget[name][i]]
            assert ch.seconds[phase] == min(c["seconds"] for c in fits)
    assert sum(tight[n].workspace[p] for n in tight for p in ca.PHASES) < sum(loose[n].workspace[p] for n in loose for p in ca.PHASES)


def test_budget_below_every_workspace_falls_back_with_warning_or_fails_strictly():
    model, x = small_net(), batch()
    bench = ca.Benchmarker(reps=1)
    with pytest.warns(RuntimeWarning, match="no algorithm's workspace fits"):
        choices = ca.select_algorithms(model, x, 0, benchmarker=bench, algorithms=["native", "im2col", "im2col-chunked1"])
    for ch in choices.values():
        for phase in ca.PHASES:
            smallest = min(c["workspace"] for c in ch.candidates if c["phase"] == phase)
            assert ch.workspace[phase] == smallest
    assert any(ch.fallback for ch in choices.values())
    with pytest.raises(NasagentError, match="raise the memory limit"):
        ca.select_algorithms(model, x, 0, benchmarker=bench, algorithms=["native", "im2col"], strict=True)


def test_benchmarks_are_cached_in_memory_and_in_a_json_file(tmp_path):
    model, x = small_net(), batch()
    path = tmp_path / "conv_cache.json"
    algos = ["native", "im2col", "fft", "native-chunked2"]
    first = ca.Benchmarker(ca.BenchmarkCache(path), reps=1)
    a = ca.select_algorithms(model, x, 10**6, benchmarker=first, algorithms=algos)
    assert first.runs == 3 * len(algos) * 2  # every layer, algorithm and pass once
    with pytest.warns(RuntimeWarning):
        ca.select_algorithms(model, x, 10**3, benchmarker=first, algorithms=algos)
    assert first.runs == 3 * len(algos) * 2  # another budget, no new benchmark
    second = ca.Benchmarker(ca.BenchmarkCache(path), reps=1)
    b = ca.select_algorithms(model, x, 10**6, benchmarker=second, algorithms=algos)
    assert second.runs == 0
    assert {n: (c.forward, c.backward) for n, c in a.items()} == {n: (c.forward, c.backward) for n, c in b.items()}
    ca.select_algorithms(model, batch(n=3), 10**6, benchmarker=second, algorithms=algos)
    assert second.runs == 3 * len(algos) * 2  # a new batch size is a new problem
    path.write_text("not json")
    with pytest.raises(NasagentError, match="not a cache file"):
        ca.BenchmarkCache(path)


def test_applying_choices_keeps_outputs_gradients_and_state_dict():
    model = small_net()
    algo = copy.deepcopy(model)
    ca.apply_algorithms(algo, {"0": "fft", "3": "im2col-chunked2", "5": "im2col"}, backward={"0": "native-chunked4"})
    assert ca.applied_algorithms(algo) == {"0": ("fft", "native-chunked4"), "3": ("im2col-chunked2",) * 2, "5": ("im2col",) * 2}
    assert list(algo.state_dict()) == list(model.state_dict())
    x, y = batch(), torch.tensor([0, 1, 2, 3, 0, 1])
    for net in (model, algo):
        F.cross_entropy(net(x), y).backward()
    torch.testing.assert_close(algo(x), model(x), rtol=1e-4, atol=1e-5)
    for (n, p), q in zip(model.named_parameters(), algo.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-4, msg=n)
    twin = copy.deepcopy(algo)  # a copy runs its own parameters
    assert ca.applied_algorithms(twin) == ca.applied_algorithms(algo)
    with torch.no_grad():
        twin[0].weight.zero_()
    assert not torch.equal(twin(x), algo(x))
    ca.remove_algorithms(algo)
    assert ca.applied_algorithms(algo) == {}
    torch.testing.assert_close(algo(x), model(x))


def test_padding_modes_and_same_padding_through_apply():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    algo = ca.apply_algorithms(copy.deepcopy(model), {"0": "im2col", "1": "fft"})
    x = batch(n=2, hw=7)
    torch.testing.assert_close(algo(x), model(x), rtol=1e-4, atol=1e-5)
    problems = ca.layer_problems(model, x)
    assert problems["1"].x_shape == (2, 4, 9, 9)  # the reflect padding is applied before the algorithm
    with pytest.raises(NasagentError, match="asymmetric"):
        ca.apply_algorithms(nn.Sequential(nn.Conv2d(3, 4, 2, padding="same")), {"0": "im2col"})


def test_select_then_apply_end_to_end():
    model, x = small_net(), batch()
    choices = ca.select_algorithms(model, x, 2**20, benchmarker=ca.Benchmarker(reps=1), algorithms=["native", "im2col", "im2col-chunked1"])
    ref = model(x)
    ca.apply_algorithms(model, choices)
    assert ca.applied_algorithms(model) == {n: (c.forward, c.backward) for n, c in choices.items()}
    torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-5)


def test_free_bytes_per_step_follows_the_memory_runtimes_ledger():
    model, x = small_net(), batch()
    roomy = ca.free_bytes_per_step(model, x, 64 * 2**20)
    tight = ca.free_bytes_per_step(model, x, 2 * 2**20)
    assert set(roomy) == {"0", "3", "5"}
    for name in roomy:
        for r, t in zip(roomy[name], tight[name]):
            assert 0 <= t < r < 64 * 2**20
            assert r - t == 62 * 2**20 or t == 0
    with pytest.raises(NasagentError, match="positive"):
        ca.free_bytes_per_step(model, x, 0)
    with pytest.raises(NasagentError, match="unknown memory policy"):
        ca.free_bytes_per_step(model, x, 2**20, policy="magic")


def test_bad_inputs_raise_clear_errors():
    model, x = small_net(), batch()
    bench = ca.Benchmarker(reps=1)
    with pytest.raises(NasagentError, match="non-negative"):
        ca.select_algorithms(model, x, -5, benchmarker=bench)
    with pytest.raises(NasagentError, match="no budget for conv layer"):
        ca.select_algorithms(model, x, {"0": 100}, benchmarker=bench)
    with pytest.raises(NasagentError, match="no nn.Conv2d"):
        ca.select_algorithms(nn.Linear(3, 3), torch.randn(2, 3))
    with pytest.raises(NasagentError, match="unknown convolution algorithm"):
        ca.select_algorithms(model, x, None, benchmarker=bench, algorithms=["gemm"])
    with pytest.raises(NasagentError, match="cannot run"):
        ca.select_algorithms(model, torch.randn(2, 5, 8, 8), None, benchmarker=bench)
    with pytest.raises(NasagentError, match="not an nn.Conv2d"):
        ca.apply_algorithms(model, {"1": "native"})
    with pytest.raises(NasagentError, match="reps"):
        ca.Benchmarker(reps=0)
    assert bench.runs == 0
