"""Optional automatic mixed precision (``amp``) for stand-alone training and PARSEC: convolutions run in reduced
precision (bfloat16 on the CPU), the weights stay float32, training still learns, and checkpoints carry the
scaler's state. CUDA's float16 + gradient-scaler path is the same code with the scaler enabled; it is checked
only where a GPU exists."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402
from nasagent.evaluation.networks.darts import DartsGenotypeNetwork  # noqa: E402
from nasagent.evaluation.parsec_search import ParsecSearch  # noqa: E402
from nasagent.evaluation.train import MixedPrecision, TrainingBenchmark, TrainSettings, train_model  # noqa: E402
from nasagent.spaces.darts import DartsGenotype  # noqa: E402

CONV = DartsGenotype(normal=[("sep_conv_3x3", 0), ("dil_conv_3x3", 1)] * 4, reduce=[("sep_conv_3x3", 0), ("max_pool_3x3", 1)] * 4)
TINY = {"C": 4, "layers": 3, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.2)


def _conv_dtypes(net):
    """Record the dtype of every Conv2d output while the hooks are on."""
    seen = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    return seen, hooks


@pytest.mark.parametrize("amp", [False, True])
def test_training_runs_convolutions_in_bfloat16_on_the_cpu_and_still_learns(small, amp):
    torch.manual_seed(0)
    net = DartsGenotypeNetwork(CONV, C=8, layers=3, num_classes=10, in_channels=1)
    seen, hooks = _conv_dtypes(net)
    outcome, _ = train_model(net, small, TrainSettings(epochs=4, batch_size=32, lr=0.05, amp=amp), seed=0, device=torch.device("cpu"))
    for h in hooks:
        h.remove()
    expected = torch.bfloat16 if amp else torch.float32
    assert expected in seen and (torch.bfloat16 in seen) == amp  # evaluation passes stay float32
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights are never cast
    assert outcome.train_loss < 0.5 < np.log(10)  # it fits the training set (a uniform guess costs ln 10)
    assert outcome.val_accuracy > 15.0  # chance is 10 %; 4 epochs on 360 images leave BN statistics rough


def test_training_benchmark_takes_amp_and_train_model_checkpoints_the_scaler(small, tmp_path):
    bench = TrainingBenchmark(small, space="darts", epochs=1, batch_size=64, amp=True, C=4, layers=3, measure=False)
    assert bench.settings.amp is True and bench(CONV).metrics["val_accuracy"] >= 0.0
    settings = TrainSettings(epochs=2, batch_size=64, amp=True)
    ck = tmp_path / "run.pt"
    torch.manual_seed(0)
    straight, _ = train_model(DartsGenotypeNetwork(CONV, C=4, layers=3, num_classes=10, in_channels=1), small, settings, 0, "cpu")
    torch.manual_seed(0)
    net = DartsGenotypeNetwork(CONV, C=4, layers=3, num_classes=10, in_channels=1)
    train_model(net, small, TrainSettings(epochs=2, batch_size=64, amp=True, max_seconds=1e-9), 0, "cpu", checkpoint=ck)
    assert "amp" in torch.load(ck, weights_only=False)  # stopped after one epoch by the time budget
    resumed, _ = train_model(net, small, settings, 0, "cpu", checkpoint=ck)
    assert resumed.epochs_trained == 2 and resumed.curve == pytest.approx(straight.curve)


def test_mixed_precision_off_is_the_plain_float32_step():
    lin = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    ref = torch.nn.Linear(3, 1)
    ref.load_state_dict(lin.state_dict())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    x = torch.randn(8, 3)
    mp = MixedPrecision(False, torch.device("cpu"))
    with mp.autocast():
        loss = lin(x).pow(2).mean()
    mp.backward(loss)
    mp.unscale(opt)
    mp.step(opt)
    ref_opt.zero_grad()
    ref(x).pow(2).mean().backward()
    ref_opt.step()
    assert torch.equal(lin.weight, ref.weight) and torch.equal(lin.bias, ref.bias)
    assert not mp.scaler.is_enabled() and MixedPrecision(True, torch.device("cpu")).dtype == torch.bfloat16


def test_parsec_scores_and_trains_children_in_bfloat16_and_resumes(small, tmp_path):
    s = ParsecSearch(K=2, seed=1, amp=True, **TINY)
    s._setup(small)
    seen, hooks = _conv_dtypes(s.net)
    x = torch.from_numpy(small.x_train[:32])
    y = torch.from_numpy(small.y_train[:32])
    before = [z.detach().clone() for z in s.dist.logits]
    w_before = [p.detach().clone() for p in s.net.parameters()]
    st = s.step(x[:16], y[:16], x[16:], y[16:])
    for h in hooks:
        h.remove()
    assert "skipped" not in st and np.isfinite(st["train_loss"])
    assert seen == {torch.bfloat16}
    assert any(not torch.equal(a, b) for a, b in zip(before, s.dist.logits, strict=True))  # π moved
    assert any(not torch.equal(a, b) for a, b in zip(w_before, s.net.parameters(), strict=True))  # weights moved
    assert all(p.dtype == torch.float32 for p in s.net.parameters())
    first = ParsecSearch(K=2, seed=1, amp=True, **TINY)
    first.fit(small, Budget(evaluations=1), tmp_path)
    assert "amp" in torch.load(tmp_path / "parsec.pt", weights_only=False)
    resumed = ParsecSearch(K=2, seed=1, amp=True, **TINY)
    resumed.fit(small, Budget(evaluations=2), tmp_path)
    straight = ParsecSearch(K=2, seed=1, amp=True, **TINY)
    straight.fit(small, Budget(evaluations=2))
    assert resumed.epoch == 2 and resumed.config()["settings"]["amp"] is True
    for a, b in zip(straight.dist.logits, resumed.dist.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 with a gradient scaler needs CUDA")
def test_cuda_uses_float16_with_a_gradient_scaler():
    mp = MixedPrecision(True, torch.device("cuda"))
    assert mp.dtype == torch.float16 and mp.scaler.is_enabled()
