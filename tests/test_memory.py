"""The memory runtime (thesis Ch. 8): meter, Alg. 8 route, liveness / offload / recompute, estimator, planner,
pool and tensor-cache replays, and the errors on bad input."""

import copy

import pytest
import torch
from torch import nn

from nasagent.core import NasagentError
from nasagent.systems.memexec import MemoryPolicy
from nasagent.systems.memgraph import INPUT, trace_layers
from nasagent.systems.memory import (
    MemoryRuntime,
    estimate_peak,
    fits_memory,
    ladder,
    measure_layer_needs,
    measure_peak,
    plan_memory,
)
from nasagent.systems.memplan import STAGES, DryRunner, MachineRates, first_fit_replay, lru_replay
from nasagent.systems.meter import peak_of_allocations

MB = 2**20


def cnn(width: int = 8) -> nn.Module:
    """Conv-BN-ReLU stages with pooling, dropout and a dense head: every layer kind the runtime tells apart."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.Dropout(0.3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10),
    )


class Residual(nn.Module):
    """A fan-out and a join (x + f(x)), then a second branch joined by concatenation."""

    def __init__(self, width: int = 8):
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.a = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.b = nn.Conv2d(width, width, 1)
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        r = self.a(s) + s
        z = torch.cat([r, self.b(s)], dim=1)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 1), 1))


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot follow it
            return self.fc(x)
        return self.fc(-x)


def _batch(n=4, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def _autograd_step(model, x, y):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def _runtime_step(model, policy, x, y):
    model.zero_grad(set_to_none=True)
    rt = MemoryRuntime(model, policy)
    torch.manual_seed(123)
    loss = rt.step(x, y, nn.functional.cross_entropy)
    return rt, float(loss), [p.grad.clone() for p in model.parameters()]


# -- the meter -------------------------------------------------------------------------------------------------
def test_measure_peak_counts_new_tensors_only_and_reports_what_is_left():
    before = torch.ones(2**20)  # 4 MiB alive before the call: not counted

    def work():
        a = torch.ones(2**18)  # 1 MiB
        b = torch.ones(2**19)  # 2 MiB; a and b alive together -> peak >= 3 MiB
        del a, b
        return torch.ones(2**16)  # 256 KiB survives the call

    m = measure_peak(work, device="cpu")
    assert m.source == "cpu-profiler"
    assert 3 * MB <= m.peak_bytes < 3.5 * MB
    assert 256 * 1024 <= m.end_bytes < 300 * 1024
    assert m.result.numel() == 2**16 and before.numel() == 2**20
    assert m.rss_peak_bytes is None or m.rss_peak_bytes >= 0


def test_peak_of_allocations_gives_no_credit_for_freeing_older_blocks():
    # (time, address, bytes); frees negative. Address 1 was allocated before the call: its free must not let
    # the 8-byte block ride on the room it leaves (CUDA's own counter would read 8 - 4 = 4 here).
    assert peak_of_allocations([(0, 1, -4), (1, 2, 8)]) == (8, 8)
    # an address reused after its free counts twice; a block freed in the tick it was allocated still counts
    assert peak_of_allocations([(0, 5, 3), (1, 5, -3), (2, 5, 6), (3, 6, 2), (3, 6, -2)]) == (8, 6)
    # an older block freed and its address handed out again within one tick: the new block stays alive
    assert peak_of_allocations([(1, 1, -4), (1, 1, 8), (2, 2, 8)]) == (16, 16)
    # the events may come in any order: they are replayed by time
    assert peak_of_allocations([(2, 7, -5), (1, 8, 1), (0, 7, 5)]) == (6, 1)


def test_measure_peak_gives_no_credit_for_freeing_a_block_from_before_the_call():
    holder = [torch.ones(2**20)]  # 4 MiB allocated before the call

    def work():
        holder.clear()  # frees the 4 MiB inside the call
        return torch.ones(2**21).sum()  # 8 MiB new

    assert measure_peak(work, device="cpu", rss=False).peak_bytes >= 8 * MB


def test_measure_peak_rejects_unknown_devices():
    with pytest.raises(NasagentError, match="cpu and cuda"):
        measure_peak(lambda: None, device="mps")
    if not torch.cuda.is_available():
        with pytest.raises(NasagentError, match="CUDA is not available"):
            measure_peak(lambda: None, device="cuda")


# -- graph and route -------------------------------------------------------------------------------------------
def test_route_runs_every_layer_after_all_of_its_inputs():
    graph = trace_layers(Residual())
    route = graph.route()
    assert sorted(route) == list(range(len(graph)))
    pos = {i: k for k, i in enumerate(route)}
    joins = [l for l in graph.layers if len([j for j in l.inputs if j != INPUT]) > 1]
    assert joins, "the residual model has joins (add, cat)"
    for layer in graph.layers:
        for j in layer.inputs:
            if j != INPUT:
                assert pos[j] < pos[layer.index], f"{layer.name} runs before its input {graph.layers[j].name}"
    kinds = {l.kind for l in graph.layers}
    assert kinds == {"conv", "dense", "cheap"}


def test_untraceable_model_and_in_place_methods_give_clear_errors():
    with pytest.raises(NasagentError, match="torch.fx cannot follow"):
        MemoryRuntime(Untraceable())

    class InPlace(nn.Module):
        def forward(self, x):
            return x.relu_()

    with pytest.raises(NasagentError, match="in-place"):
        trace_layers(InPlace())


# -- the runtime: exact gradients, real freeing -------------------------------------------------------------------
@pytest.mark.parametrize("make", [cnn, Residual], ids=["cnn", "residual"])
def test_every_stage_gives_the_gradients_of_plain_autograd(make):
    model = make()
    x, y = _batch()
    plain = copy.deepcopy(model)
    ref_loss, ref = _autograd_step(plain, x, y)
    policies = ladder(model, x.shape)
    assert list(policies) == list(STAGES)
    for stage, pol in policies.items():
        state = copy.deepcopy(model.state_dict())
        rt, loss, grads = _runtime_step(model, pol, x, y)
        assert loss == pytest.approx(ref_loss, rel=1e-5), stage
        for g, r in zip(grads, ref):
            assert torch.allclose(g, r, atol=1e-5, rtol=1e-4), stage
        grad_bytes = sum(g.numel() * g.element_size() for g in grads)  # the .grad tensors outlive the step
        assert rt.ledger.current == grad_bytes and rt.ledger.host_current == 0, f"{stage} leaked tensors"
        # recomputation must not update BatchNorm's running statistics a second time
        for (k, v), (_, w) in zip(model.state_dict().items(), plain.state_dict().items()):
            if "running" in k:
                assert torch.allclose(v, w, atol=1e-6), f"{stage}: {k}"
        model.load_state_dict(state)
    rec = MemoryRuntime(model, policies["recompute"])
    rec.step(x, y, nn.functional.cross_entropy)
    assert rec.stats["recomputed_layers"] > 0
    if make is cnn:  # dropout is recomputed with the forward pass' random numbers (checked by the gradients above)
        assert any(l.random for l in rec.graph.layers)


def test_the_ladder_lowers_the_peak_step_by_step_and_recompute_approaches_the_largest_layer():
    model = cnn(width=16)
    x, y = _batch(n=8, size=16)
    peaks, rts = {}, {}
    for stage, pol in ladder(model, x.shape).items():
        rts[stage], _, _ = _runtime_step(model, pol, x, y)
        peaks[stage] = rts[stage].ledger.peak
    assert peaks["baseline"] > peaks["liveness"] > peaks["offload"] > peaks["recompute"]
    assert rts["offload"].stats["offloaded_bytes"] > 0
    assert rts["offload"].stats["fetched_bytes"] == rts["offload"].stats["offloaded_bytes"]
    assert rts["offload"].ledger.host_peak > 0 and rts["liveness"].ledger.host_peak == 0
    l_peak = max(rts["liveness"].layer_need.values())
    assert peaks["recompute"] <= 1.5 * l_peak < peaks["liveness"]
    # the meter sees the same ordering for the first two rungs (real tensors, really freed)
    measured = {}
    for stage in ("baseline", "liveness"):
        rt = MemoryRuntime(model, ladder(model, x.shape)[stage])
        measured[stage] = measure_peak(lambda: (model.zero_grad(set_to_none=True), rt.step(x, y, nn.functional.cross_entropy)), rss=False).peak_bytes
    assert measured["baseline"] > 1.3 * measured["liveness"]


def test_a_policy_checks_its_actions():
    with pytest.raises(NasagentError, match="keep"):
        MemoryPolicy(actions={"conv": "swap"})
    with pytest.raises(NasagentError, match="speed"):
        MemoryPolicy(recompute_mode={"relu": "fast"})


# -- estimator, planner ---------------------------------------------------------------------------------------
def test_the_estimate_equals_the_runtimes_own_ledger_without_computing():
    model = Residual()
    x, y = _batch()
    for stage in STAGES:
        rt = MemoryRuntime(model, ladder(model, x.shape)[stage])
        model.zero_grad(set_to_none=True)
        rt.step(x)  # the estimator's loss: output.sum()
        est = estimate_peak(model, x.shape, stage)
        assert est.exact and est.peak_bytes == rt.ledger.peak, stage
    est = estimate_peak(model, (4, 3, 12, 12))
    assert est.largest_layer_bytes <= est.peak_bytes
    assert est.param_bytes == sum(p.numel() * 4 for p in model.parameters())
    big = estimate_peak(model, (16, 3, 12, 12))
    assert big.peak_bytes > 3 * est.peak_bytes  # activations scale with the batch
    assert fits_memory(model, (4, 3, 12, 12), est.peak_bytes + est.param_bytes)
    assert not fits_memory(model, (4, 3, 12, 12), est.peak_bytes + est.param_bytes - 1)


def test_estimator_bad_input_and_untraceable_fall_back():
    model = cnn()
    with pytest.raises(NasagentError, match="positive"):
        estimate_peak(model, (0, 3, 8, 8))
    with pytest.raises(NasagentError, match="unknown memory policy"):
        estimate_peak(model, (2, 3, 8, 8), "swap-everything")
    coarse = estimate_peak(Untraceable(), (2, 4))  # needs real values: one CPU forward pass
    assert not coarse.exact and coarse.peak_bytes > 0

    class Loop(nn.Module):  # fx cannot trace range(x.shape[0]), a meta pass can run it
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 64)

        def forward(self, x):
            for _ in range(x.shape[0]):
                x = torch.tanh(self.fc(x))
            return x

    small, large = estimate_peak(Loop(), (2, 64)), estimate_peak(Loop(), (8, 64))
    assert not small.exact and large.peak_bytes > small.peak_bytes  # more rows and more iterations
    with pytest.raises(NasagentError, match="torch.fx"):
        estimate_peak(Untraceable(), (2, 4), "recompute")


def test_planner_meets_a_limit_and_refuses_one_below_the_largest_layer():
    model = cnn(width=16)
    x, y = _batch(n=8, size=16)
    dry = DryRunner(model, x.shape)
    live = dry(MemoryPolicy("liveness"))
    l_peak = max(live.layer_need.values())
    limit = (live.ledger.peak + l_peak) // 2
    plan = plan_memory(model, x.shape, limit, MachineRates())
    assert plan.estimated_peak <= limit < live.ledger.peak
    assert plan.steps and any(a in ("offload", "recompute") for a in plan.policy.actions.values())
    _, ref_loss, ref = _runtime_step(copy.deepcopy(model), MemoryPolicy("liveness"), x, y)
    rt, loss, grads = _runtime_step(model, plan.policy, x, y)
    assert rt.ledger.peak <= limit
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    assert all(torch.allclose(g, r, atol=1e-5, rtol=1e-4) for g, r in zip(grads, ref))
    with pytest.raises(NasagentError, match="below the largest single layer"):
        plan_memory(model, x.shape, l_peak - 1)


def test_measured_layer_needs_cover_every_layer():
    model = cnn()
    x, _ = _batch()
    needs = measure_layer_needs(model, x)
    assert set(needs) == {l.name for l in trace_layers(copy.deepcopy(model)).layers}
    assert all(v > 0 for v in needs.values())
    conv = needs["_0"]  # input, output, their gradients and the weight gradient of the first convolution
    assert conv >= 2 * 4 * 8 * 12 * 12 * 4


# -- allocator and tensor cache replays ------------------------------------------------------------------------
def test_first_fit_pool_reuses_and_coalesces_freed_blocks():
    events = [("alloc", "a", 2048), ("alloc", "b", 1024), ("alloc", "c", 1024), ("free", "a", 2048),
              ("free", "b", 1024), ("alloc", "d", 3000)]  # d fits in the coalesced a+b hole (3 blocks)
    stats = first_fit_replay(events)
    assert stats.pool_bytes_needed == 4 * 1024
    assert stats.peak_blocks_used == 4 and stats.allocations == 4
    frag = first_fit_replay([("alloc", "a", 1024), ("alloc", "b", 1024), ("free", "a", 1024), ("alloc", "c", 2048)])
    assert frag.pool_bytes_needed == 4 * 1024 and frag.fragmentation == pytest.approx(0.25)


def test_lru_cache_moves_nothing_when_everything_fits_and_evicts_the_least_recent():
    events = [("alloc", "a", 10), ("alloc", "b", 10), ("alloc", "c", 10), ("use", "a", 10), ("free", "b", 10), ("free", "c", 10)]
    assert lru_replay(events, 30) == {"offload_bytes": 0, "fetch_bytes": 0, "misses": 0, "locked_overflow_bytes": 0}
    # one step per event: c evicts a (least recent), then using a brings it back by evicting b
    stepped = [e for ev in events for e in (ev, ("step", "s", 0))]
    assert lru_replay(stepped, 20) == {"offload_bytes": 20, "fetch_bytes": 10, "misses": 1, "locked_overflow_bytes": 0}


def test_lru_cache_never_evicts_a_tensor_locked_by_the_running_step():
    # step 2 works on a, b and c at once: with room for two, nothing may go out during it (an unlocked cache
    # would evict b); later steps evict least-recent first: b before a (a was used after b in step 2)
    events = [("alloc", "a", 10), ("step", "1", 0), ("alloc", "b", 10), ("use", "a", 10), ("alloc", "c", 10),
              ("step", "2", 0), ("alloc", "d", 10), ("step", "3", 0), ("use", "b", 10)]
    roomy = lru_replay(events, 30)
    assert roomy == {"offload_bytes": 20, "fetch_bytes": 10, "misses": 1, "locked_overflow_bytes": 0}  # b; a to fetch b
    tight = lru_replay(events, 20)
    assert tight["locked_overflow_bytes"] == 10  # step 2's working set is 30 against 20
    assert tight["offload_bytes"] == 20 + 10 and tight["misses"] == 1  # b and a out in step 3; c out to fetch b
    # a step whose working set exceeds the cache: nothing can be evicted, the excess is reported
    crowded = [("alloc", "a", 10), ("alloc", "b", 10), ("alloc", "c", 10), ("step", "1", 0)]
    assert lru_replay(crowded, 20) == {"offload_bytes": 0, "fetch_bytes": 0, "misses": 0, "locked_overflow_bytes": 10}


def test_the_runtime_log_marks_steps_for_the_cache_replay():
    model = cnn()
    x, y = _batch()
    rt, _, _ = _runtime_step(model, ladder(model, x.shape)["liveness"], x, y)
    steps = [e for e in rt.ledger.events if e[0] == "step"]
    assert len(steps) == len(rt.ledger.trace) == 2 * len(rt.graph.layers) + 1  # forward, loss, backward
    res = lru_replay(rt.ledger.events, rt.ledger.peak)
    assert res["offload_bytes"] == 0 and res["locked_overflow_bytes"] == 0
    small = lru_replay(rt.ledger.events, max(rt.layer_need.values()) // 4)
    assert small["locked_overflow_bytes"] > 0  # a quarter of the largest layer's need cannot hold that step


# -- the NAS evaluator hook: reject a network estimated above a memory limit, before training it --------------------
def test_training_evaluator_rejects_networks_over_max_memory_without_training():
    from nasagent.evaluation.datasets import load_dataset, subsample
    from nasagent.evaluation.train import TrainingBenchmark

    data = subsample(load_dataset("digits"), 0.1)
    conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    skip = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    roomy = TrainingBenchmark(data, epochs=1, batch_size=32, measure=False, max_memory_mb=1e4, C=4, N=1)
    ok = roomy(conv)
    assert ok.status == "ok" and ok.metrics["est_memory_mb"] > 0 and "val_accuracy" in ok.metrics
    est_conv, est_skip = ok.metrics["est_memory_mb"], roomy(skip).metrics["est_memory_mb"]
    assert est_skip < est_conv  # convolutions save more for backward than skips
    tight = TrainingBenchmark(data, epochs=1, batch_size=32, measure=False, max_memory_mb=(est_conv + est_skip) / 2, C=4, N=1)
    rejected = tight(conv)
    assert rejected.status == "failed" and "max_memory_mb" in rejected.error and rejected.cost == 0.0
    assert rejected.metrics["est_memory_mb"] == pytest.approx(est_conv)
    assert tight(skip).status == "ok"
    with pytest.raises(NasagentError, match="max_memory_mb"):
        TrainingBenchmark(data, epochs=1, max_memory_mb=-1, C=4, N=1)


class TwoBlocks(nn.Module):
    """A stem and two residual blocks with identity skips: every block input is a branch point."""

    def __init__(self, width: int = 8):
        super().__init__()
        torch.manual_seed(2)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                          nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)) for _ in range(2))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = torch.relu(block(x) + x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_fanout_checkpoints_keep_gradients_and_lower_the_residual_peak_toward_the_largest_layer():
    model = TwoBlocks()
    x, y = _batch(n=8, size=16)
    _, ref = _autograd_step(copy.deepcopy(model), x, y)
    faithful = ladder(model, x.shape)["recompute"]
    fanout = ladder(model, x.shape, fanout_checkpoints=True)["recompute"]
    assert fanout.name == "recompute-fanout"
    graph = trace_layers(copy.deepcopy(model))
    branch_points = [l.name for l in graph.layers if l.kind == "cheap" and len(set(l.consumers)) > 1]
    assert branch_points and all(fanout.actions[n] == "offload" and faithful.actions[n] == "recompute" for n in branch_points)
    state = copy.deepcopy(model.state_dict())
    rts = {}
    for pol in (faithful, fanout):
        model.load_state_dict(state)
        rts[pol.name], _, grads = _runtime_step(model, pol, x, y)
        for g, r in zip(grads, ref):
            assert torch.allclose(g, r, atol=1e-5, rtol=1e-4), pol.name
    live, _, _ = _runtime_step(model, ladder(model, x.shape)["liveness"], x, y)
    l_dynamic = max(live.layer_need_dynamic.values())
    assert rts["recompute-fanout"].ledger.dynamic_peak < rts["recompute"].ledger.dynamic_peak
    assert rts["recompute-fanout"].ledger.dynamic_peak <= 1.5 * l_dynamic
    assert rts["recompute-fanout"].stats["recomputed_layers"] < rts["recompute"].stats["recomputed_layers"]
    assert estimate_peak(model, x.shape, "recompute-fanout").peak_bytes == rts["recompute-fanout"].ledger.peak


def test_dynamic_peak_leaves_out_exactly_the_parameter_gradients():
    model = cnn()
    x, y = _batch()
    rt, _, grads = _runtime_step(model, ladder(model, x.shape)["liveness"], x, y)
    grad_bytes = sum(g.numel() * g.element_size() for g in grads)
    assert rt.ledger.dynamic_current == 0 and rt.ledger.current == grad_bytes
    assert rt.ledger.peak - grad_bytes <= rt.ledger.dynamic_peak < rt.ledger.peak
    conv = next(l for l in rt.graph.layers if l.kind == "conv")
    weights = sum(p.numel() * p.element_size() for p in conv.params() if p.requires_grad)
    assert weights > 0 and rt.layer_need[conv.name] - rt.layer_need_dynamic[conv.name] == weights
    for p in model.parameters():  # frozen weights: nothing but dynamic tensors
        p.requires_grad_(False)
    frozen = MemoryRuntime(model, ladder(model, x.shape)["liveness"])
    frozen.step(x, y, nn.functional.cross_entropy)
    assert frozen.ledger.dynamic_peak == frozen.ledger.peak


def test_a_parameter_passed_by_keyword_gets_its_gradient():
    import torch.nn.functional as F

    class KeywordBias(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.1)
            self.b = nn.Parameter(torch.randn(4) * 0.1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(F.relu(F.conv2d(x, self.w, bias=self.b, padding=1)).mean((2, 3)))

    torch.manual_seed(0)
    model, x, y = KeywordBias(), torch.randn(2, 3, 6, 6), torch.tensor([1, 2])
    ref = copy.deepcopy(model)
    F.cross_entropy(ref(x), y).backward()
    MemoryRuntime(model, MemoryPolicy("liveness")).step(x, y, F.cross_entropy)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, q.grad)


def test_the_projects_own_networks_are_traced_with_their_optional_arguments_fixed():
    import torch.nn.functional as F

    import nasagent
    from nasagent.spaces.darts import DartsSpace

    darts = DartsSpace().format(DartsSpace().sample(__import__("numpy").random.default_rng(0)))
    for arch, sizes in [("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
                         {"C": 4, "N": 1}),  # forward(x, arch=None, weights=None)
                        (darts, {"C": 4, "layers": 3})]:  # forward(x, return_aux=False)
        torch.manual_seed(0)
        net = nasagent.build(arch, 10, (1, 8, 8), **sizes)
        assert estimate_peak(net, (16, 1, 8, 8)).exact
        ref = copy.deepcopy(net)
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
        F.cross_entropy(ref(x), y).backward()
        MemoryRuntime(net, ladder(net, x.shape)["recompute"]).step(x, y, F.cross_entropy)
        for p, q in zip(net.parameters(), ref.parameters(), strict=True):
            assert torch.allclose(p.grad, q.grad, atol=1e-6)
