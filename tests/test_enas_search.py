"""The ENAS-like search (policy over NB201 ops by REINFORCE on shared weights): the update moves the policy
towards rewarded ops, resume is exact, few-shot splitting works with it, and bad use is named."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.evaluation.darts_search import EnasSearch, FewShotDarts  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402

TINY = {"C": 4, "N": 1, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.15)


class Planted(EnasSearch):
    """Reward 1 exactly when edge 0 holds conv 3x3: the policy must learn that, whatever the network does."""

    def _reward(self, arch, x, y):
        return 1.0 if arch[0] == "nor_conv_3x3" else 0.0


def test_reinforce_moves_the_policy_towards_the_rewarded_op(small):
    s = Planted(seed=0, arch_lr=0.2, baseline_decay=0.5, **TINY)
    s.fit(small, Budget(evaluations=6))
    p = s.probabilities()["cell"]
    gain = p[0, s.relax.ops.index("nor_conv_3x3")] - 0.2  # from uniform over 5 ops
    assert gain > 0.4
    assert gain > np.abs(p[1:] - 0.2).max()  # more than the drift of the edges without a reward signal
    assert s.derive()[0] == "nor_conv_3x3" and s.history[-1]["reward"] > 0.4


def test_fit_resumes_exactly(small, tmp_path):
    straight = EnasSearch(seed=1, arch_lr=0.05, **TINY)
    straight.fit(small, Budget(evaluations=2))
    first = EnasSearch(seed=1, arch_lr=0.05, **TINY)
    first.fit(small, Budget(evaluations=1), tmp_path)
    resumed = EnasSearch(seed=1, arch_lr=0.05, **TINY)
    resumed.fit(small, Budget(evaluations=2), tmp_path)
    assert resumed.epoch == 2 and (tmp_path / "enas.pt").exists()
    assert torch.allclose(straight.alpha["cell"], resumed.alpha["cell"]) and straight.baseline == pytest.approx(resumed.baseline)
    assert straight.history[-1]["arch"] == resumed.history[-1]["arch"]


@pytest.mark.parametrize("method", ["darts", "enas"])
def test_a_time_budget_that_ends_mid_epoch_stops_there_and_resumes(small, tmp_path, monkeypatch, method):
    """DARTS and ENAS stop at the step where the time budget ends (they used to finish the epoch, overrunning it
    by up to an epoch) and a resumed fit trains the epoch's remaining batches, ending where a straight fit ends."""
    from nasagent.evaluation.darts_search import METHODS
    from nasagent.evaluation.oneshot import Epoch

    cls, opts = METHODS[method], dict(seed=2, arch_lr=0.05, **TINY)
    straight = cls(**opts)
    straight.fit(small, Budget(evaluations=2))
    calls = [0]

    def out_of_time(self):  # the clock runs out two steps into the first epoch (of three steps or more)
        calls[0] += 1
        return calls[0] == 2

    monkeypatch.setattr(Epoch, "out_of_time", out_of_time)
    first = cls(**opts)
    first.fit(small, Budget(evaluations=2, seconds=3600), tmp_path)
    assert (first.epoch, first.epoch_step, calls[0]) == (0, 2, 2)
    assert len(first.history) == 1 and first.history[0]["partial"] and first.history[0]["epoch"] == 1
    monkeypatch.undo()
    resumed = cls(**opts)
    resumed.fit(small, Budget(evaluations=2), tmp_path)
    assert (resumed.epoch, resumed.epoch_step) == (2, 0)
    assert [h["epoch"] for h in resumed.history] == [1, 1, 2] and [h.get("partial", False) for h in resumed.history] == [True, False, False]
    assert torch.allclose(straight.alpha["cell"], resumed.alpha["cell"], atol=1e-6)
    for a, b in zip(straight.net.state_dict().values(), resumed.net.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_few_shot_enas_splits_inherits_and_picks_the_lowest_loss(small):
    f = FewShotDarts(method="enas", splits=1, edges=[2], seed=0, arch_lr=0.05, **TINY)
    f.fit(small, Budget(evaluations=2))
    assert len(f.children) == 5 and all(isinstance(c, EnasSearch) for c in f.children)
    assert sorted(c.derive()[2] for c in f.children) == sorted(f.root.relax.ops)  # one child per op of edge 2
    assert f.chosen == int(np.argmin(f.val_losses)) and len(f.propose(3)) == 3
    assert f.propose(1)[0] == f.children[f.chosen].derive()


def test_bad_use_is_named(small, tmp_path):
    from nasagent.registry import make_space, make_strategy

    with pytest.raises(NasagentError, match="nb201"):
        EnasSearch(space="darts")
    with pytest.raises(NasagentError, match="method"):
        FewShotDarts(method="gdas")
    with pytest.raises(NasagentError, match="baseline_decay"):
        EnasSearch(baseline_decay=1.0)
    with pytest.raises(NasagentError, match="second-order"):
        FewShotDarts(method="enas", order=2)
    with pytest.raises(NasagentError, match="method"):
        make_strategy("darts", make_space("nb201"), data="digits", method="gdas")
    np.savez(tmp_path / "d.npz", x=small.x_train, y=small.y_train)
    strat = make_strategy("darts", make_space("nb201"), data=str(tmp_path / "d.npz"), method="enas", epochs=1, C=4, N=1,
                          batch_size=32, device="cpu", entropy_weight=0.0)
    assert isinstance(strat._fit(), EnasSearch)
