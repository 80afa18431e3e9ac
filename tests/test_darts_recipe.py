"""The published training recipes: DARTS' (which PARSEC's retraining and fine-tuning follow) and AlphaX's NASNet
one. The auxiliary head (placement and loss), path dropout (whole examples, identities spared, linear ramp),
cutout, SGDR, the ImageNet mobile network, the multi-initialisation retraining summary, the recipe tables
themselves, and the bad inputs around them."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402
from nasagent.evaluation.networks import build  # noqa: E402
from nasagent.evaluation.networks.darts import DartsGenotypeNetwork  # noqa: E402
from nasagent.evaluation.networks.ops import drop_path  # noqa: E402
from nasagent.evaluation.parsec_search import FINETUNE_RECIPE, IMAGENET_RECIPE, ParsecSearch, finetune  # noqa: E402
from nasagent.evaluation.train import TrainingBenchmark, TrainSettings, cutout, epoch_lr, retrain, train_model  # noqa: E402
from nasagent.spaces.darts import DartsGenotype, DartsSpace  # noqa: E402

CONV = DartsGenotype(normal=[("sep_conv_3x3", 0), ("dil_conv_3x3", 1)] * 4, reduce=[("sep_conv_3x3", 0), ("max_pool_3x3", 1)] * 4)
SKIPS = DartsGenotype(normal=[("skip_connect", 0), ("skip_connect", 1)] * 4, reduce=[("skip_connect", 0), ("skip_connect", 1)] * 4)


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.1)


def test_auxiliary_head_sits_after_the_second_reduction_and_only_in_training():
    torch.manual_seed(0)
    net = DartsGenotypeNetwork(CONV, C=4, layers=6, num_classes=10, in_channels=1, auxiliary=True)
    assert net.reduction_at == [2, 4] and net.aux_at == 4
    x = torch.randn(3, 1, 8, 8)
    net.train()
    out, aux = net(x, return_aux=True)
    assert out.shape == aux.shape == (3, 10)
    aux.sum().backward()  # the auxiliary loss reaches the cells up to its own, and none after it
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.parameters()) for c in net.cells]
    assert grads == [True] * 5 + [False]
    assert net.classifier.weight.grad is None
    net.eval()
    _, aux_eval = net(x, return_aux=True)
    assert aux_eval is None and torch.is_tensor(net(x))
    plain = DartsGenotypeNetwork(CONV, C=4, layers=6, num_classes=10, in_channels=1)
    assert plain.auxiliary_head is None and sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in net.parameters())


def test_drop_path_drops_whole_examples_and_spares_identities():
    torch.manual_seed(0)
    x = torch.ones(4000, 2, 3, 3)
    y = drop_path(x, 0.3)
    per_example = y.flatten(1)
    kept = per_example[per_example != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7))  # survivors rescaled by 1 / (1 - p)
    assert torch.all(per_example.min(1).values == per_example.max(1).values)  # all or nothing per example
    assert abs(float((per_example[:, 0] == 0).float().mean()) - 0.3) < 0.03
    x = torch.randn(8, 1, 6, 6)
    for arch, spared in ((SKIPS, True), (CONV, False)):  # one normal cell: identities only vs convolutions
        torch.manual_seed(1)
        net = DartsGenotypeNetwork(arch, C=4, layers=1, num_classes=10, in_channels=1).train()
        ref = net(x)
        net.drop_path_prob = 0.9
        torch.manual_seed(2)
        dropped = net(x)
        assert torch.allclose(ref, dropped) == spared
        net.eval()  # never in evaluation
        assert torch.equal(net(x), net(x))


def test_cutout_zeroes_one_seeded_square_per_image():
    x = torch.ones(50, 3, 16, 16)
    a = cutout(x, 6, np.random.default_rng(5))
    b = cutout(x, 6, np.random.default_rng(5))
    assert torch.equal(a, b)
    zeros = (a[:, 0] == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 36 and int(zeros.min()) >= 9  # a full 6x6 square, clipped at the borders
    assert torch.equal(a[:, 0], a[:, 2])  # the same square on every channel
    assert int((cutout(x, 6, np.random.default_rng(6)) != a).sum()) > 0


def test_imagenet_recipe_builds_the_mobile_network():
    from nasagent.evaluation.networks.metrics import count_flops, count_params

    arch = DartsSpace().sample(np.random.default_rng(0))
    net = build(arch, num_classes=1000, input_shape=(3, 224, 224), C=IMAGENET_RECIPE["C"], layers=IMAGENET_RECIPE["layers"],
                stem=IMAGENET_RECIPE["stem"])
    params = count_params(net)
    assert 3.5e6 < params < 6.5e6  # DARTS-space ImageNet networks: 4.7-5.6 M parameters
    assert count_flops(net, (3, 224, 224)) < 2 * 600e6  # the mobile setting: < 600 M multiply-adds
    with pytest.raises(NasagentError, match="stem"):
        build(arch, input_shape=(3, 32, 32), C=8, layers=3, stem="resnet")


def test_aux_loss_trains_the_head_and_drop_path_ramps(small):
    arch = DartsSpace().sample(np.random.default_rng(1))
    heads = {}
    for w in (0.0, 0.4):
        torch.manual_seed(0)
        net = DartsGenotypeNetwork(arch, C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True)
        before = [p.detach().clone() for p in net.auxiliary_head.parameters()]
        settings = TrainSettings(epochs=2, batch_size=32, lr=0.05, aux_weight=w, drop_path=0.4, cutout=4)
        train_model(net, small, settings, seed=0, device="cpu")
        heads[w] = any(not torch.equal(a, b) for a, b in zip(before, net.auxiliary_head.parameters(), strict=True))
        assert net.drop_path_prob == pytest.approx(0.4 * 1 / 2)  # the value of the last (second) epoch
    assert heads == {0.0: False, 0.4: True}


def test_training_benchmark_regularisers_and_bad_input(small):
    arch = DartsSpace().format(DartsSpace().sample(np.random.default_rng(2)))
    bench = TrainingBenchmark(small, space="darts", epochs=1, batch_size=32, C=4, layers=3, measure=False, device="cpu",
                              aux_weight=0.4, drop_path=0.2, cutout=4, label_smoothing=0.1, lr_decay=0.97)
    assert bench.network(arch).auxiliary_head is not None
    r = bench(arch)
    assert r.status == "ok" and 0 <= r.metrics["test_accuracy"] <= 100
    with pytest.raises(NasagentError, match="auxiliary head"):
        TrainingBenchmark(small, space="nb201", epochs=1, C=4, N=1, aux_weight=0.4)
    with pytest.raises(NasagentError, match="drop_path"):
        TrainingBenchmark(small, space="nb201", epochs=1, C=4, N=1, drop_path=0.2)
    for bad in ({"drop_path": 1.0}, {"cutout": -1}, {"label_smoothing": 1.5}, {"lr_decay": 0.0}, {"aux_weight": float("nan")}):
        with pytest.raises(NasagentError, match=next(iter(bad))):
            TrainSettings(**bad).check()


def test_retrain_reports_mean_and_std_over_initialisations(small):
    arch = DartsSpace().format(DartsSpace().sample(np.random.default_rng(3)))
    out = retrain(arch, small, inits=3, seed=10, epochs=1, batch_size=32, C=4, layers=3, device="cpu")
    tests = [r["test_accuracy"] for r in out["runs"]]
    assert [r["seed"] for r in out["runs"]] == [10, 11, 12]
    assert out["test_accuracy"] == pytest.approx(np.mean(tests)) and out["test_std"] == pytest.approx(np.std(tests, ddof=1))
    assert len(set(tests)) > 1 or out["test_std"] == 0.0
    again = retrain(arch, small, inits=1, seed=10, epochs=1, batch_size=32, C=4, layers=3, device="cpu")
    assert again["test_accuracy"] == pytest.approx(tests[0]) and again["test_std"] == 0.0  # seeded: same first run
    with pytest.raises(NasagentError, match="inits"):
        retrain(arch, small, inits=0)


def test_parsec_finetune_with_aux_and_cutout(small, tmp_path):
    s = ParsecSearch(K=2, seed=0, C=4, layers=3, batch_size=32, device="cpu")
    s.fit(small, Budget(evaluations=1))
    opts = {k: v for k, v in FINETUNE_RECIPE.items() if k not in ("epochs", "C", "layers", "batch_size")}
    big = finetune(s, small, Budget(evaluations=1), tmp_path, C=4, layers=3, batch_size=32, **opts)
    assert big.net.auxiliary_head is not None and big.arch_lr == FINETUNE_RECIPE["arch_lr"]
    assert big.config()["settings"]["aux_weight"] == 0.4 and big.config()["settings"]["cutout"] == 16
    assert any(p.grad is not None for p in big.net.auxiliary_head.parameters())  # the head trained with v
    assert big.epoch == 1 and np.isfinite(big.history[0]["entropy"])


def test_sgdr_restarts_at_alphax_periods():
    st = TrainSettings(lr=0.05, sgdr_period=10, sgdr_mult=2)
    lrs = [epoch_lr(st, e, 70) for e in range(71)]
    restarts = [e for e in range(1, 71) if lrs[e] > lrs[e - 1]]
    assert restarts == [10, 30, 70]  # periods 10, 20, 40: AlphaX's 70 search epochs are three of them
    assert lrs[0] == lrs[10] == lrs[30] == 0.05 and lrs[29] < 0.002
    assert epoch_lr(TrainSettings(lr=0.1, lr_decay=0.97), 2, 250) == pytest.approx(0.1 * 0.97**2)
    with pytest.raises(NasagentError, match="one schedule"):
        TrainSettings(sgdr_period=10, lr_decay=0.97).check()


def test_nasnet_network_gets_alphax_regularisers():
    from nasagent.evaluation.networks.nasnet import Branch, NASNetNetwork
    from nasagent.spaces.nasnet import NASNetSpace

    assert Branch((), 4, 1, True).identity and Branch(("identity",), 4, 1, True).identity
    assert not Branch(("conv_3x3",), 4, 1, True).identity and not Branch((), 4, 2, True).identity  # reduced: a conv
    sp = NASNetSpace()
    arch = sp.sample(np.random.default_rng(0))
    torch.manual_seed(0)
    net = NASNetNetwork(sp, arch, num_classes=10, in_channels=1, C=4, N=1, auxiliary=True, dropout=0.2)
    assert net.aux_at == 3 and isinstance(net.dropout, torch.nn.Dropout)  # cells n, r, n, r, n: after the 2nd r
    x = torch.randn(4, 1, 16, 16)
    out, aux = net.train()(x, return_aux=True)
    assert out.shape == aux.shape == (4, 10)
    aux.sum().backward()
    reached = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in c.parameters()) for c in net.cells]
    assert reached == [True] * 4 + [False]
    net.eval()
    assert net(x, return_aux=True)[1] is None and torch.equal(net(x), net(x))
    net.train()
    net.drop_path_prob = 0.9
    torch.manual_seed(3)
    a = net(x)
    torch.manual_seed(4)
    assert not torch.allclose(a, net(x))  # branches are dropped in training


def test_recipes_name_only_options_the_trainers_take():
    import inspect

    from nasagent.evaluation import recipes
    from nasagent.evaluation.networks import DEFAULT_SIZES, EXTRA_OPTIONS

    trainer = set(inspect.signature(TrainingBenchmark.__init__).parameters) | {"inits"}
    for name, space in (("PARSEC_CIFAR10", "darts"), ("PARSEC_IMAGENET", "darts"), ("ALPHAX_SEARCH", "nasnet")):
        recipe = getattr(recipes, name)
        sizes = set(DEFAULT_SIZES[space]) | set(EXTRA_OPTIONS[space])
        assert set(recipe) <= trainer | sizes, (name, set(recipe) - trainer - sizes)
        TrainSettings(**{k: v for k, v in recipe.items() if k in TrainSettings.__dataclass_fields__}).check()
    parsec = set(inspect.signature(ParsecSearch.__init__).parameters) | {"epochs"}
    assert set(recipes.PARSEC_FINETUNE) <= parsec
    assert FINETUNE_RECIPE is recipes.PARSEC_FINETUNE and IMAGENET_RECIPE is recipes.PARSEC_IMAGENET


def test_alphax_search_recipe_trains_a_nasnet_cell_scaled_down(small):
    from nasagent.evaluation.recipes import ALPHAX_SEARCH
    from nasagent.spaces.nasnet import NASNetSpace

    arch = NASNetSpace().format(NASNetSpace().sample(np.random.default_rng(1)))
    recipe = {**ALPHAX_SEARCH, "epochs": 2, "sgdr_period": 1, "batch_size": 32, "cutout": 4}
    bench = TrainingBenchmark(small, space="nasnet", C=4, N=1, measure=False, device="cpu", **recipe)
    net = bench.network(arch)
    assert net.auxiliary_head is not None and isinstance(net.dropout, torch.nn.Dropout)
    r = bench(arch)
    assert r.status == "ok" and r.metrics["epochs_trained"] == 2
