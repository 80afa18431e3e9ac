"""TuNAS: MobileNet-like spaces, the masked supernet, controller, rewards, cost models and the search loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402
from nasagent.evaluation.tunas_cost import FlopsCost, LatencyTable, ParamsCost  # noqa: E402
from nasagent.evaluation.tunas_models import ALL, TunasSupernet  # noqa: E402
from nasagent.registry import make_space  # noqa: E402
from nasagent.spaces.mobilenet import FAMILIES, MobileNetSpace, make_divisible, scale_filters  # noqa: E402
from nasagent.strategies.tunas import (  # noqa: E402
    TunasController,
    TunasSearch,
    abs_reward,
    mnas_hard,
    mnas_soft,
    rejection_sample,
    reward_function,
    rl_learning_rate,
    warmup_probability,
)

TINY = {"width": 0.25, "depth": 2, "blocks": 3}


@pytest.fixture(scope="module")
def tiny_data():
    """Digits (8x8, one channel) with a small training split: enough for a few fast supernet steps."""
    return subsample(load_dataset("digits", seed=0), 0.15, seed=0)


# -- spaces ----------------------------------------------------------------------------------------------------------
def test_full_size_cardinalities_match_the_paper():
    got = {f: MobileNetSpace(f).cardinality() for f in FAMILIES}
    assert got["proxylessnas"] == pytest.approx(2.16e21, rel=0.01)
    assert got["proxylessnas-enlarged"] == pytest.approx(1.39e28, rel=0.01)
    assert got["mobilenet-v3-like"] == pytest.approx(8.48e42, rel=0.01)
    # the distinct count does not multiply the choices inside a skipped layer (seed ambiguity A11)
    assert MobileNetSpace("proxylessnas").cardinality(distinct=True) == pytest.approx(6.6e17, rel=0.02)


def test_filter_rounding_and_choices():
    assert make_divisible(10, 8) == 8 and make_divisible(12, 8) == 16 and make_divisible(3, 8) == 8
    assert scale_filters(16) == (8, 16, 24, 32)
    assert scale_filters(32) == (16, 24, 32, 40, 48, 64)
    assert len(scale_filters(64)) == 7 and scale_filters(64)[-1] == 128


def test_blocks_share_their_width_and_skippable_layers_are_residual():
    sp = MobileNetSpace("proxylessnas-enlarged")
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = sp.sample(rng)
        by_block: dict[int, set] = {}
        for layer, r in zip(sp.layers, sp.resolve(arch), strict=True):
            if layer.kind == "ib":
                by_block.setdefault(layer.block, set()).add(r.out)
                if layer.skip is not None:
                    assert r.residual and r.stride == 1
        assert all(len(ws) == 1 for ws in by_block.values())
        assert all(r.out % 8 == 0 for r in sp.resolve(arch))


def test_codec_roundtrip_key_and_errors():
    sp = make_space("mobilenet-v3-like-tiny")
    rng = np.random.default_rng(1)
    arch = sp.sample(rng)
    assert sp.parse(sp.format(arch)) == arch
    assert sp.parse(sp.to_json(arch)) == arch
    with pytest.raises(NasagentError, match=f"has {len(sp.decisions)} decisions"):
        sp.parse("0:1")
    bad = list(arch)
    bad[0] = 9
    with pytest.raises(NasagentError, match="out of range"):
        sp.parse(":".join(map(str, bad)))
    # a decision inside a skipped layer does not change the key (deduplication); outside it does
    skip = next(i for i, d in enumerate(sp.decisions) if d.choices == ("keep", "zero"))
    inner = next(i for i, d in enumerate(sp.decisions) if d.gate == skip)
    a = list(arch)
    a[skip] = 1
    b = list(a)
    b[inner] = (a[inner] + 1) % len(sp.decisions[inner].choices)
    assert sp.key(tuple(a)) == sp.key(tuple(b))
    a[skip] = 0
    b[skip] = 0
    assert sp.key(tuple(a)) != sp.key(tuple(b))
    assert sp.summary(arch).count("\n") == len(sp.layers) - 1


# -- supernet -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_masked_supernet_equals_the_standalone_network(family):
    sp = MobileNetSpace(family, **TINY)
    torch.manual_seed(0)
    net = TunasSupernet(sp, num_classes=10, in_channels=1)
    x = torch.randn(6, 1, 32, 32)
    rng = np.random.default_rng(2)
    archs = [sp.sample(rng) for _ in range(3)]
    outs = []
    for arch in archs:
        standalone = net.extract(arch).train()
        y = net(x, arch)
        torch.testing.assert_close(y, standalone(x), rtol=1e-4, atol=1e-5)
        outs.append(y)
    assert not torch.allclose(outs[0], outs[1])  # different architectures really compute different functions


def test_masks_stop_gradients_and_op_warmup_trains_every_kernel():
    sp = make_space("proxylessnas-enlarged-tiny")
    net = TunasSupernet(sp, 10, 1)
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    small = sp.smallest()
    torch.nn.functional.cross_entropy(net(x, small), y).backward()
    head = net.layers[-1].conv
    n_out = sp.resolve(small, 1)[-1].out
    assert head.weight.grad[n_out:].abs().sum() == 0 and head.weight.grad[:n_out].abs().sum() > 0
    net.zero_grad()
    sel = [ALL if d.tag == "op" else len(d.choices) - 1 for d in sp.decisions]
    torch.nn.functional.cross_entropy(net(x, sel), y).backward()
    ib = next(m for m, layer in zip(net.layers, sp.layers, strict=True) if layer.kind == "ib" and layer.skip is not None)
    assert all(dw.weight.grad is not None and dw.weight.grad.abs().sum() > 0 for dw in ib.dw)


# -- rewards, schedules, controller --------------------------------------------------------------------------------------
def test_rewards_and_schedules():
    assert abs_reward(0.8, 110, 100) == pytest.approx(0.8 - 0.01)
    assert abs_reward(0.8, 90, 100) == pytest.approx(0.8 - 0.01)
    assert mnas_soft(0.8, 50, 100) == pytest.approx(0.8 * 0.5**-0.07)
    assert mnas_hard(0.8, 50, 100) == 0.8 and mnas_hard(0.8, 200, 100) == pytest.approx(0.8 * 2**-0.07)
    assert reward_function("abs")[1] == -0.10
    with pytest.raises(NasagentError, match="rewards: abs"):
        reward_function("linear")
    with pytest.raises(NasagentError, match="negative"):
        reward_function("abs", 0.1)
    assert warmup_probability(0) == 1 and warmup_probability(0.125) == pytest.approx(0.5) and warmup_probability(0.3) == 0
    assert rl_learning_rate(0.2, 1.0) == 0 and rl_learning_rate(0.25, 1.0) == 1.0
    assert rl_learning_rate(1.0, 1.0) == pytest.approx(10.0)


def test_hierarchical_log_prob_ignores_skipped_layers():
    sp = make_space("proxylessnas-tiny")
    ctl = TunasController(sp, lr=0.1)
    with torch.no_grad():
        for lg in ctl.logits:
            lg.copy_(torch.randn(len(lg), dtype=torch.float64))
    skip = next(i for i, d in enumerate(sp.decisions) if d.choices == ("keep", "zero"))
    inner = next(i for i, d in enumerate(sp.decisions) if d.gate == skip)
    a = list(sp.sample(np.random.default_rng(0)))
    a[skip] = 1
    b = list(a)
    b[inner] = (a[inner] + 1) % len(sp.decisions[inner].choices)
    assert float(ctl.log_prob(a).detach()) == pytest.approx(float(ctl.log_prob(b).detach()))
    a[skip] = b[skip] = 0
    assert float(ctl.log_prob(a).detach()) != pytest.approx(float(ctl.log_prob(b).detach()))


def test_reinforce_moves_the_argmax_to_the_rewarded_kernel():
    sp = make_space("proxylessnas-tiny")
    ctl = TunasController(sp, lr=0.05, seed=0)
    kernels = [i for i, d in enumerate(sp.decisions) if d.name.endswith("kernel")]
    for _ in range(150):
        archs = [ctl.sample() for _ in range(4)]
        rewards = [float(np.mean([a[i] == 1 for i in kernels])) for a in archs]  # kernel 5 is best everywhere
        ctl.update(archs, rewards, lr=0.05)
    best = ctl.argmax()
    assert all(best[i] == 1 for i in kernels)


def _bandit(space, cost, target, reward, beta, steps=150, seed=0):
    """REINFORCE with a synthetic quality that prefers wide, large networks: latency is the only brake."""
    fn, beta = reward_function(reward, beta)
    ctl = TunasController(space, lr=0.05, seed=seed)
    top = cost.achievable()[1]
    for step in range(steps):
        archs = [ctl.sample() for _ in range(2)]
        rewards = [fn(0.5 + 0.3 * cost(a) / top, cost(a), target, beta) for a in archs]
        ctl.update(archs, rewards, rl_learning_rate(step / steps, 0.1, delay=0.0, increase=3.0))
    return cost(ctl.argmax())


def test_absolute_reward_hits_the_target_where_the_soft_reward_drifts_with_beta():
    sp = make_space("proxylessnas-enlarged-tiny")
    cost = FlopsCost(sp, (1, 32, 32))
    lo, hi = cost.achievable()
    target = lo + 0.35 * (hi - lo)
    assert abs(_bandit(sp, cost, target, "abs", -0.5) / target - 1) < 0.1
    soft = [_bandit(sp, cost, target, "mnas-soft", b) for b in (-0.07, -1.0)]
    assert soft[0] > 1.2 * target  # a small β ignores the target: the soft reward needs a β sweep
    assert soft[0] > soft[1]


# -- cost models ---------------------------------------------------------------------------------------------------------
def test_cost_models_grow_with_the_network_and_check_targets():
    sp = make_space("mobilenet-v3-like-tiny")
    for model in (FlopsCost(sp, (1, 32, 32)), ParamsCost(sp, (1, 32, 32))):
        lo, hi = model.achievable()
        assert 0 < lo < hi
        assert lo <= model(sp.sample(np.random.default_rng(0))) <= hi
        with pytest.raises(NasagentError, match="pick a target in that range"):
            model.check_target(hi * 2)
    # the params count agrees with the stand-alone network's
    arch = sp.sample(np.random.default_rng(3))
    net = sp.build_network(arch, 10, (1, 32, 32))
    n = sum(p.numel() for p in net.parameters())
    assert ParamsCost(sp, (1, 32, 32))(arch) * 1000 == pytest.approx(n, rel=1e-6)


def test_latency_table_is_additive_persisted_and_refuses_foreign_tables(tmp_path):
    sp = make_space("proxylessnas-tiny")
    path = tmp_path / "lat.json"
    table = LatencyTable(sp, (1, 16, 16), repeats=3, warmup=1, path=path)
    a = sp.sample(np.random.default_rng(0))
    t = table(a)
    assert t > 0 and table.measured > 0
    size, expected = 16, 0.0  # the sum of the per-layer entries of the active layers
    for r in sp.resolve(a, 1):
        if r.active:
            expected += table.entries[LatencyTable._key(r, size)]
        size = (size - 1) // r.stride + 1
    assert t == pytest.approx(expected)
    table.save()
    again = LatencyTable(sp, (1, 16, 16), path=path)
    assert again(a) == t and again.measured == 0
    with pytest.raises(NasagentError, match="was measured for proxylessnas-tiny"):
        LatencyTable(make_space("mobilenet-v3-like-tiny"), (1, 16, 16), path=path)
    doc = json.loads(path.read_text())
    doc["device"]["cpu"] = "Some Phone SoC"
    path.write_text(json.dumps(doc))
    with pytest.raises(NasagentError, match="another device"):
        LatencyTable(sp, (1, 16, 16), path=path)
    assert LatencyTable(sp, (1, 16, 16), path=path, allow_foreign=True)(a) == t


def test_rejection_sampling_stays_in_the_window():
    sp = make_space("mobilenet-v3-like-tiny")
    cost = FlopsCost(sp, (1, 32, 32))
    lo, hi = cost.achievable()
    target = lo + 0.3 * (hi - lo)
    archs, stats = rejection_sample(sp, cost, target, 10, tolerance=0.05, seed=0)
    assert len({sp.key(a) for a in archs}) == 10
    assert all(abs(cost(a) / target - 1) <= 0.05 for a in archs)
    assert 0 < stats["accept_rate"] < 1
    assert archs == rejection_sample(sp, cost, target, 10, tolerance=0.05, seed=0)[0]
    with pytest.raises(NasagentError, match="cannot be met"):
        rejection_sample(sp, cost, hi * 3, 5)
    with pytest.raises(NasagentError, match="widen the tolerance"):
        rejection_sample(sp, cost, lo * 1.001, 50, tolerance=1e-4, max_tries=500)
    for n, tol in ((0, 0.05), (5, -1.0), (5, float("nan"))):
        with pytest.raises(NasagentError, match="n >= 1 and a tolerance"):
            rejection_sample(sp, cost, target, n, tolerance=tol)


# -- the search ----------------------------------------------------------------------------------------------------------
def _search(**kw):
    opts = {"space": "proxylessnas-tiny", "cost": "flops", "batch_size": 32, "rl_lr": 0.05, "seed": 0}
    opts.update(kw)
    return TunasSearch(**opts)


def test_search_rejects_unreachable_targets_and_bad_settings(tiny_data):
    with pytest.raises(NasagentError, match="cannot be met"):
        _search(target=1e6).fit(tiny_data, 1)
    with pytest.raises(NasagentError, match="positive target"):
        _search(target=None)
    with pytest.raises(NasagentError, match="RL delay"):
        _search(target=1.0, warmup=0.5, rl_delay=0.25)
    with pytest.raises(NasagentError, match="MobileNet-like"):
        TunasSearch("nb201", target=1.0)
    for bad, fragment in [({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                          ({"rl_lr": float("inf")}, "rl_lr"), ({"label_smoothing": 2.0}, "label_smoothing"),
                          ({"samples_per_step": 8, "batch_size": 4}, "samples_per_step")]:
        with pytest.raises(NasagentError, match=fragment):
            _search(target=1.0, **bad)
    # a checkpoint of another search in the same folder is refused, whatever option differs
    assert _search(target=1.0)._config() != _search(target=1.0, rl_lr=5.0)._config()
    assert _search(target=1.0)._config() == _search(target=1.0)._config()


def test_search_resumes_to_the_same_state_as_an_uninterrupted_run(tiny_data, tmp_path):
    cost = FlopsCost(make_space("proxylessnas-tiny"), tiny_data.input_shape)
    lo, hi = cost.achievable()
    target = lo + 0.4 * (hi - lo)
    whole = _search(target=target, epochs=2)
    whole.fit(tiny_data, Budget(evaluations=2), tmp_path / "whole")
    first = _search(target=target, epochs=2)
    first.fit(tiny_data, Budget(evaluations=1), tmp_path / "split")
    assert first.step == first.steps_per_epoch()
    second = _search(target=target, epochs=2)
    second.fit(tiny_data, Budget(evaluations=2), tmp_path / "split")
    assert second.step == whole.step == 2 * whole.steps_per_epoch()
    for a, b in zip(whole.controller.logits, second.controller.logits, strict=True):
        torch.testing.assert_close(a, b)
    proposals = second.propose(3)
    assert proposals[0] == second.controller.argmax() and len({second.space.key(p) for p in proposals}) == 3
    report = second.report()
    assert report["target"] == target and report["history"][-1]["step"] == second.step
    last = report["history"][-1]
    assert last["cost_ratio"] == pytest.approx(last["cost"] / target)
    # the advantage was taken against the baseline before this step's update: b' = m b + (1 - m) r  =>  r - b = (r - b') / m
    m = second.controller.momentum
    assert last["advantage"] == pytest.approx((last["reward"] - last["baseline"]) / m)


def test_run_oneshot_retrains_the_proposal_from_scratch(tiny_data, tmp_path):
    from nasagent.evaluation.oneshot import run_oneshot
    from nasagent.evaluation.train import TrainingBenchmark

    search = _search(target=60.0, cost="params", space="mobilenet-v3-like-tiny")
    bench = TrainingBenchmark(tiny_data, space=search.space, epochs=1, batch_size=64, measure=True)
    run = run_oneshot(search, tiny_data, 1, tmp_path, bench, n=1)
    assert run.best is not None
    assert 0 <= run.best.metrics["val_accuracy"] <= 100 and run.best.metrics["latency_ms"] > 0


def test_cli_samples_latency_matched_architectures_and_reports_bad_targets():
    from typer.testing import CliRunner

    from nasagent.cli import app

    runner = CliRunner()
    sp = make_space("proxylessnas-tiny")
    cost = FlopsCost(sp, (1, 8, 8))
    lo, hi = cost.achievable()
    target = lo + 0.5 * (hi - lo)
    res = runner.invoke(app, ["tunas", "sample-random", "--target", str(target), "--n", "3", "--space", "proxylessnas-tiny",
                              "--data", "digits", "--cost", "flops", "--tolerance", "0.1"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "MFLOPs" in line]
    assert len(lines) == 3 and all(abs(cost(sp.parse(line.split()[0])) / target - 1) <= 0.1 for line in lines)
    res = runner.invoke(app, ["tunas", "search", "--target", str(10 * hi), "--space", "proxylessnas-tiny", "--data", "digits",
                              "--cost", "flops", "--epochs", "1"])
    assert res.exit_code == 2 and "cannot be met" in res.output and "pick a target in that range" in res.output
    # a target relative to random architectures means the same on every machine
    res = runner.invoke(app, ["tunas", "sample-random", "--target", "p25", "--n", "2", "--space", "proxylessnas-tiny",
                              "--data", "digits", "--cost", "flops", "--tolerance", "0.1"])
    assert res.exit_code == 0, res.output
    rng = np.random.default_rng(0)
    p25 = np.percentile([cost(sp.sample(rng)) for _ in range(200)], 25)
    lines = [line for line in res.output.splitlines() if line.startswith(tuple("0123456789")) and "MFLOPs" in line]
    assert len(lines) == 2 and all(abs(cost(sp.parse(line.split()[0])) / p25 - 1) <= 0.1 for line in lines)
    for bad in ("p0", "p100", "fast", "-1", "nan"):
        res = runner.invoke(app, ["tunas", "sample-random", "--target", bad, "--space", "proxylessnas-tiny", "--data", "digits",
                                  "--cost", "flops"])
        assert res.exit_code == 2 and "--target must be" in res.output, (bad, res.output)


def test_cli_profile_latency_measures_the_table_at_the_requested_thread_count(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    path = tmp_path / "lat.json"
    res = CliRunner().invoke(app, ["tunas", "profile-latency", "--table", str(path), "--space", "proxylessnas-tiny",
                                   "--data", "digits", "--samples", "2", "--threads", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(path.read_text())["device"]["threads"] == 2
