"""PARSEC: the cell distribution (exact oracles), Algorithm 1's step (streamed = naive gradient, flat memory in
K, NaN steps skipped), resumable fitting, π transfer, and the runner/CLI path on tiny networks."""

import itertools
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402
from nasagent.evaluation.parsec_distribution import CellDistribution  # noqa: E402
from nasagent.evaluation.parsec_search import ParsecSearch, finetune, importance_weights  # noqa: E402
from nasagent.spaces.darts import DartsSpace  # noqa: E402

TINY = {"C": 4, "layers": 3, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.1)


def _small_dist(exclude, seed=0):
    d = CellDistribution(ops=("skip_connect", "max_pool_3x3"), n_nodes=2, cell_types=("normal",), exclude_duplicates=exclude,
                         init_std=1.0, seed=seed)
    return d


def _all_samples(d):
    return itertools.product(*[range(d.categories(n)) for _, n, _ in d.slots])


# -- the distribution ----------------------------------------------------------------------------------------------
def test_darts_cell_distribution_has_the_papers_sizes():
    d = CellDistribution()
    assert len(d.slots) == 16 and sum(z.numel() for z in d.logits) == 392
    assert [z.numel() for z in d.logits[:8]] == [14, 14, 21, 21, 28, 28, 35, 35]
    assert d.max_entropy() == pytest.approx(2 * 2 * sum(math.log(k) for k in (14, 21, 28, 35)))
    assert d.max_entropy() == pytest.approx(50.28, abs=0.01)
    assert d.entropy() == pytest.approx(d.max_entropy(), rel=1e-6)  # uniform π at init
    assert d.size() == (7**8 * (2 * 3 * 4 * 5) ** 2) ** 2


@pytest.mark.parametrize("exclude", [False, True])
def test_log_prob_normalises_and_entropy_is_exact(exclude):
    d = _small_dist(exclude)
    lps = np.array([float(d.log_prob(s).detach()) for s in _all_samples(d)])
    many = d.log_prob_many(list(_all_samples(d))).detach().numpy()
    assert np.allclose(many, lps, atol=1e-6)
    p = np.exp(lps)
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    finite = p > 0
    assert d.entropy() == pytest.approx(float(-(p[finite] * lps[finite]).sum()), abs=1e-4)
    samples = list(_all_samples(d))
    best = samples[int(np.argmax(lps))]
    assert d.log_prob(d.mode()).item() == pytest.approx(lps.max(), abs=1e-6)
    if exclude:
        assert all(d.is_valid(d.sample(np.random.default_rng(i))) for i in range(200))
        assert d.is_valid(best)


def test_top_k_matches_brute_force_over_valid_cells():
    d = _small_dist(False, seed=3)
    valid = sorted((s for s in _all_samples(d) if d.is_valid(s)), key=lambda s: -float(d.log_prob(s).detach()))
    top = d.top_k(5)
    assert [round(float(d.log_prob(s).detach()), 5) for s in top] == [round(float(d.log_prob(s).detach()), 5) for s in valid[:5]]
    assert d.best_valid() == top[0]


def test_logit_gradient_has_the_closed_form():
    d = CellDistribution(init_std=0.5, seed=1)
    s = d.sample(np.random.default_rng(0))
    d.log_prob(s).backward()
    for c, z in enumerate(d.logits):
        onehot = torch.zeros_like(z)
        onehot[s[c]] = 1.0
        assert torch.allclose(z.grad, onehot - torch.softmax(z.detach(), 0), atol=1e-6)


def test_sampling_is_seeded_and_follows_pi():
    d = CellDistribution(init_std=1.0, seed=2)
    a = [d.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a == [d.sample(np.random.default_rng(5)) for _ in range(3)]
    rng = np.random.default_rng(0)
    counts = np.bincount([s[0] for s in d.samples(rng, 4000)], minlength=14) / 4000
    assert np.abs(counts - d.probabilities()[0]).max() < 0.03
    slow = np.bincount([d.sample(rng)[0] for _ in range(1000)], minlength=14) / 1000
    assert np.abs(slow - d.probabilities()[0]).max() < 0.05


def test_genotype_round_trip_and_serialisation():
    d = CellDistribution(init_std=1.0, seed=4)
    sp = DartsSpace()
    g = sp.sample(np.random.default_rng(1))
    s = d.sample_of(g)
    assert d.genotype(s) == g and sp.validate(sp.format(d.genotype(s))) == g
    other = CellDistribution()
    other.load_state_dict(d.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(d.logits, other.logits, strict=True))
    assert other.best_valid() == d.best_valid()
    with pytest.raises(NasagentError, match="cannot load"):
        CellDistribution(n_nodes=3).load_state_dict(d.state_dict())
    dup = list(s)
    dup[1] = dup[0]
    with pytest.raises(NasagentError, match="twice"):
        d.genotype(dup)


def test_planted_optimum_concentrates_pi():
    """A stand-in likelihood that rewards agreement with one genotype: the empirical-Bayes π update finds it."""
    d = CellDistribution(seed=0)
    target = d.sample_of(DartsSpace().sample(np.random.default_rng(7)))
    opt = torch.optim.Adam(d.logits, lr=0.05, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    start = d.entropy()
    for _ in range(250):
        samples = d.samples(rng, 16)
        ll = torch.tensor([[float(sum(a == b for a, b in zip(s, target, strict=True)))] for s in samples])
        w = importance_weights(ll, "batch")
        opt.zero_grad()
        (-(w * d.log_prob_many(samples)).sum()).backward()
        opt.step()
    assert d.mode() == target
    assert d.entropy() < 0.5 * start


def test_importance_weightings():
    ll = torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.0]])
    assert torch.allclose(importance_weights(ll, "batch"), torch.softmax(ll.sum(1), 0))
    assert torch.allclose(importance_weights(ll, "mean"), torch.softmax(ll.mean(1), 0))
    assert torch.allclose(importance_weights(ll, "example"), torch.softmax(ll, 0).mean(1))
    assert torch.allclose(importance_weights(ll, "batch", temperature=2.0), torch.softmax(ll.sum(1) / 2, 0))
    for w in ("batch", "mean", "example"):
        assert float(importance_weights(ll, w).sum()) == pytest.approx(1.0)


# -- Algorithm 1 -----------------------------------------------------------------------------------------------------
def _batches(data, n=16):
    x = torch.from_numpy(data.x_train[:n])
    y = torch.from_numpy(data.y_train[:n])
    xs = torch.from_numpy(data.x_train[n : 2 * n])
    ys = torch.from_numpy(data.y_train[n : 2 * n])
    return xs, ys, x, y


@pytest.mark.parametrize("weighting", ["batch", "example"])
def test_streamed_step_equals_the_naive_weighted_gradient(small, weighting):
    s = ParsecSearch(K=3, lr=1e-12, momentum=0.0, weight_decay=0.0, grad_clip=None, arch_lr=0.0, weighting=weighting,
                     init_std=1.0, **TINY)
    s._setup(small)
    xs, ys, xt, yt = _batches(small)
    samples = [s.dist.sample(np.random.default_rng(i)) for i in range(3)]
    s.dist.samples = lambda rng, k: samples
    s.step(xs, ys, xt, yt)
    streamed_v = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in s.net.parameters()]
    streamed_pi = [z.grad.clone() for z in s.dist.logits]
    with torch.no_grad():
        w = importance_weights(torch.stack([s._loglik(xs, ys, a) for a in samples]), weighting)
    params = list(s.net.parameters())
    total = sum(w[k] * torch.nn.functional.cross_entropy(s.net(xt, s.dist.network_genotype(a)), yt) for k, a in enumerate(samples))
    naive_v = torch.autograd.grad(total, params, allow_unused=True)
    naive_pi = torch.autograd.grad(-sum(w[k] * s.dist.log_prob(a) for k, a in enumerate(samples)), s.dist.logits)
    for a, b, p in zip(streamed_v, naive_v, params, strict=True):
        assert torch.allclose(a, b if b is not None else torch.zeros_like(p), atol=1e-5)
    for a, b in zip(streamed_pi, naive_pi, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_peak_memory_does_not_grow_with_k(small):
    meter = pytest.importorskip("nasagent.systems.meter")
    xs, ys, xt, yt = _batches(small, 32)
    peaks = {}
    for K in (1, 6):
        s = ParsecSearch(K=K, **TINY)
        s._setup(small)
        s.step(xs, ys, xt, yt)  # warm-up: optimiser state, lazily created grads
        peaks[K] = meter.measure_peak(s.step, xs, ys, xt, yt, device="cpu", rss=False).peak_bytes
    assert peaks[1] > 0
    assert peaks[6] < 1.5 * peaks[1], peaks  # 6 children, one alive at a time: not 6x


def test_nan_steps_are_skipped_and_all_nan_epochs_fail(small):
    s = ParsecSearch(K=2, **TINY)
    s._setup(small)
    before = [p.detach().clone() for p in s.net.parameters()]
    logits = [z.detach().clone() for z in s.dist.logits]
    xs, ys, xt, yt = _batches(small)
    st = s.step(xs * float("nan"), ys, xt, yt)
    assert st == {"skipped": "non-finite search likelihood"}
    st = s.step(xs, ys, xt * float("nan"), yt)
    assert "skipped" in st
    assert all(torch.equal(a, p) for a, p in zip(before, s.net.parameters(), strict=True))
    assert all(torch.equal(a, z) for a, z in zip(logits, s.dist.logits, strict=True))
    bad = subsample(load_dataset("digits"), 0.1)
    bad.x_train = bad.x_train * np.float32("nan")
    from nasagent.evaluation.train import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="every step was skipped"):
        ParsecSearch(K=2, **TINY).fit(bad, 1)


def test_bad_configuration_is_rejected():
    with pytest.raises(NasagentError, match="K >= 1"):
        ParsecSearch(K=0)
    with pytest.raises(NasagentError, match="DARTS cells"):
        ParsecSearch(space="nb201")
    with pytest.raises(NasagentError, match="weighting"):
        ParsecSearch(weighting="sum")
    with pytest.raises(NasagentError, match="fitted"):
        ParsecSearch().propose(1)


def test_parsec_options_out_of_range_are_refused():
    from nasagent.registry import make_space, make_strategy

    with pytest.raises(NasagentError, match="needs monitor=true"):
        make_strategy("parsec", make_space("darts"), data="digits", search_seeds=2, monitor=False)
    for bad, fragment in [({"arch_lr": -1.0}, "arch_lr"), ({"baseline_decay": 5.0}, "baseline_decay"),
                          ({"min_weight": 1.5}, "min_weight")]:
        with pytest.raises(NasagentError, match=fragment):
            ParsecSearch(**bad)


def test_fit_resumes_exactly_and_transfers_pi(small, tmp_path):
    opts = dict(K=2, seed=3, init_std=0.0, **TINY)
    straight = ParsecSearch(**opts)
    straight.fit(small, Budget(evaluations=2))
    first = ParsecSearch(**opts)
    first.fit(small, Budget(evaluations=1), tmp_path)
    assert (tmp_path / "parsec.pt").exists() and first.epoch == 1
    resumed = ParsecSearch(**opts)
    resumed.fit(small, Budget(evaluations=2), tmp_path)
    assert resumed.epoch == 2 and len(resumed.history) == 2
    from nasagent.evaluation.oneshot import OneShotSearch

    assert isinstance(resumed, OneShotSearch)
    for a, b in zip(straight.dist.logits, resumed.dist.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    h = resumed.history[-1]
    assert h["entropy"] < resumed.dist.max_entropy() and h["steps"] >= 1 and 1.0 <= h["ess"] <= 2.0
    assert 0.0 <= h["mode_val_accuracy"] <= 100.0 and "Genotype(" in h["mode"]
    assert h["max_rss_mb"] > 10 and "cuda_peak_allocated_mb" not in h  # peak memory logged per epoch (CPU here)
    props = resumed.propose(4)
    assert len(props) == 4 and len({DartsSpace().key(a) for a in props}) == 4
    assert props[0] == resumed.dist.genotype(resumed.dist.best_valid())
    big = finetune(resumed, small, Budget(evaluations=1), tmp_path, C=6, layers=3, batch_size=32)
    assert (tmp_path / "finetune.pt").exists() and big.sizes == {"C": 6, "layers": 3} and big.arch_lr == 0.01
    assert big.epoch == 1 and big.history[0]["entropy"] < big.dist.max_entropy()


def test_a_time_budget_that_ends_mid_epoch_resumes_mid_epoch(small, tmp_path, monkeypatch):
    """A search the clock stops in the middle of an epoch keeps its place: the resumed search finishes that
    epoch's remaining batches (same order, same learning rate) and ends exactly where an uninterrupted one does.
    (The partial epoch used to count as done, so its remaining batches were never trained.)"""
    from nasagent.evaluation.oneshot import Epoch

    opts = dict(K=2, seed=3, init_std=0.0, **TINY)
    straight = ParsecSearch(**opts)
    straight.fit(small, Budget(evaluations=2))
    per_epoch = straight.history[0]["steps"] + straight.history[0]["skipped_steps"]
    assert per_epoch >= 2
    calls = [0]

    def out_of_time(self):  # the clock runs out one step into the second epoch
        calls[0] += 1
        return calls[0] == per_epoch + 1

    monkeypatch.setattr(Epoch, "out_of_time", out_of_time)
    first = ParsecSearch(**opts)
    first.fit(small, Budget(evaluations=2), tmp_path)
    assert (first.epoch, first.epoch_step) == (1, 1) and first.history[-1]["partial"]
    from nasagent.strategies.parsec import select_search

    assert "mode_val_accuracy" not in first.history[-1] and select_search([first]) == 0  # the full epoch's figure
    monkeypatch.undo()
    resumed = ParsecSearch(**opts)
    resumed.fit(small, Budget(evaluations=2), tmp_path)
    assert (resumed.epoch, resumed.epoch_step) == (2, 0) and len(resumed.history) == 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 2] and [h.get("partial", False) for h in resumed.history] == [False, True, False]
    assert sum(h["steps"] + h["skipped_steps"] for h in resumed.history[1:]) == per_epoch
    for a, b in zip(straight.dist.logits, resumed.dist.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    for a, b in zip(straight.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_reinforce_ablation_runs(small):
    s = ParsecSearch(K=3, estimator="reinforce", **TINY)
    s.fit(small, 1)
    assert s.baseline is not None and s.history[0]["ess"] == pytest.approx(3.0)


# -- through the runner and the CLI ------------------------------------------------------------------------------
def test_strategy_rejects_bad_use():
    from nasagent.registry import make_space, make_strategy

    with pytest.raises(NasagentError, match="space darts"):
        make_strategy("parsec", make_space("nb201"), data="digits")
    with pytest.raises(NasagentError, match="needs data"):
        make_strategy("parsec", make_space("darts"))
    with pytest.raises(NasagentError, match="K >= 1"):
        make_strategy("parsec", make_space("darts"), data="digits", K=0)


def test_multi_seed_search_keeps_the_best_by_the_criterion(tmp_path):
    from types import SimpleNamespace

    from sklearn.datasets import load_digits

    from nasagent.registry import make_space, make_strategy
    from nasagent.strategies.parsec import select_search

    fake = [SimpleNamespace(history=[{"mode_val_accuracy": a, "entropy": e}]) for a, e in ((50.0, 10.0), (70.0, 20.0), (70.0, 5.0))]
    assert select_search(fake) == 1  # highest accuracy; a tie goes to the lower seed
    assert select_search(fake, "entropy") == 2
    with pytest.raises(NasagentError, match="cannot choose"):
        select_search([SimpleNamespace(history=[])])
    with pytest.raises(NasagentError, match="select_by"):
        make_strategy("parsec", make_space("darts"), data="digits", select_by="loss")
    d = load_digits()
    np.savez(tmp_path / "tiny.npz", x=d.images[:300, None].astype(np.float32) / 16, y=d.target[:300])
    strat = make_strategy("parsec", make_space("darts"), data=str(tmp_path / "tiny.npz"), search_seeds=2, epochs=1, K=2, C=4,
                          layers=3, batch_size=32, device="cpu", checkpoint_dir=str(tmp_path / "ck"))
    chosen = strat._fit()
    assert (tmp_path / "ck" / "seed0" / "parsec.pt").exists() and (tmp_path / "ck" / "seed1" / "parsec.pt").exists()
    accs = [torch.load(tmp_path / "ck" / f"seed{i}" / "parsec.pt", weights_only=False)["history"][-1]["mode_val_accuracy"] for i in (0, 1)]
    best = int(np.argmax(accs))  # argmax takes the first of equals, as select_search does
    assert strat.search_summary["seed"] == best and chosen.seed == best
    assert chosen.history[-1]["mode_val_accuracy"] == max(accs)


def test_cli_search_parsec_on_a_user_npz_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "tiny.npz", x=d.images[:300, None].astype(np.float32) / 16, y=d.target[:300])
    out = tmp_path / "run"
    args = ["search", "--strategy", "parsec", "--space", "darts", "--data", str(tmp_path / "tiny.npz"), "--budget", "2",
            "--out", str(out), "--quiet", "--opt", "epochs=1", "--opt", "K=2", "--opt", "C=4", "--opt", "layers=3",
            "--opt", "batch_size=32", "--bopt", "epochs=1", "--bopt", "C=4", "--bopt", "layers=3", "--bopt", "measure=false"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "best.json").read_text())
    assert doc["samples"] == 2 and "Genotype(" in doc["best"]["arch"]
    assert (out / "search" / "parsec.pt").exists()
    again = CliRunner().invoke(app, ["search", "--resume", str(out), "--budget", "3", "--quiet"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "best.json").read_text())["samples"] == 3


def test_a_diverging_search_never_checkpoints_non_finite_weights(small, tmp_path):
    search = ParsecSearch(K=2, seed=0, epochs=3, lr=1e12, **TINY)
    with pytest.raises(NasagentError, match="diverged|non-finite"):
        search.fit(small, Budget(evaluations=3), tmp_path)
    if (tmp_path / "parsec.pt").exists():  # an earlier, finite epoch may have been kept
        state = torch.load(tmp_path / "parsec.pt", weights_only=False)["net"]
        assert all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
