"""Trainable networks from architectures: ``build(arch, num_classes=..., input_shape=...) -> nn.Module``.

The architecture may be a space's object or its text form; the space is recognised from it (or named with
``space=``). Widths and depths default to the published evaluation settings and can be made smaller for CPU
runs: NB201 ``C`` (16) and ``N`` cells per stage (5); DARTS ``C`` (36) and ``layers`` (20).
"""

from __future__ import annotations

from nasagent.core import NasagentError

#: the published stand-alone sizes (NB201 paper; DARTS CIFAR-10 evaluation network)
DEFAULT_SIZES = {"nb201": {"C": 16, "N": 5}, "darts": {"C": 36, "layers": 20}, "nasnet": {"C": 32, "N": 2}}
#: further network options a space's builder takes (the auxiliary head; DARTS' ImageNet stem; NASNet's dense dropout)
EXTRA_OPTIONS = {"darts": ("auxiliary", "stem"), "nasnet": ("auxiliary", "dropout")}


def _torch():
    try:
        import torch
    except ImportError:
        raise NasagentError(
            "training networks needs PyTorch: pip install torch==2.13.0 (the CPU build; an unpinned torch pulls CUDA wheels)"
        ) from None
    return torch


def infer_space(arch, space: str | None = None):
    """(space object, architecture object) for ``arch`` given as an object or a string."""
    from nasagent.registry import make_space

    if space is not None:
        sp = make_space(space) if isinstance(space, str) else space
        return sp, sp.validate(arch)
    from nasagent.spaces.darts import DartsGenotype

    if isinstance(arch, DartsGenotype) or (isinstance(arch, str) and arch.strip().startswith("Genotype(")):
        from nasagent.spaces.darts import DartsSpace

        sp = DartsSpace.for_genotype(arch)  # DARTS' 4-node cell, or another node count (PARSEC's configurable space)
        return sp, sp.validate(arch)
    if isinstance(arch, str) and "~0|" in arch or (isinstance(arch, tuple) and len(arch) == 6 and all(isinstance(o, str) for o in arch)):
        sp = make_space("nb201")
        return sp, sp.validate(arch)
    try:
        from nasagent.spaces.nasnet import NASNetSpace  # written by the AlphaX issue

        sp = NASNetSpace()
        return sp, sp.validate(arch)
    except ImportError:
        pass
    except NasagentError:
        pass
    raise NasagentError(f"cannot tell which space {arch!r} belongs to; pass space='nb201' or 'darts'")


def build(arch, num_classes: int = 10, input_shape=(3, 32, 32), space=None, check: bool = True, **sizes):
    """The stand-alone ``nn.Module`` for ``arch``; ``sizes`` override the widths/depths (C, N, layers).

    ``check`` runs one forward pass on a zero image of ``input_shape`` so that an image size the network
    cannot take fails here, with a clear message, rather than in the middle of training.
    """
    _torch()
    sp, arch = infer_space(arch, space)
    input_shape = tuple(int(d) for d in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise NasagentError(f"input_shape must be (channels, height, width), got {input_shape}")
    if int(num_classes) < 2:
        raise NasagentError(f"num_classes must be >= 2, got {num_classes}")
    model = _construct(sp, arch, int(num_classes), input_shape, sizes)
    if check:
        check_input(model, input_shape)
    model.space_name = sp.name
    model.arch_string = sp.format(arch)
    return model


def buildable(sp) -> bool:
    """Whether ``build`` can make networks of the space object ``sp``'s architectures."""
    from nasagent.spaces.darts import DartsSpace

    return hasattr(sp, "build_network") or isinstance(sp, DartsSpace) or getattr(sp, "name", "") in ("nb201", "nasnet")


def _construct(sp, arch, num_classes, input_shape, sizes):
    from nasagent.spaces.darts import DartsSpace

    name = getattr(sp, "name", "")
    if hasattr(sp, "build_network"):  # spaces that build their own networks (TuNAS' MobileNet-like spaces)
        return sp.build_network(arch, num_classes, input_shape, **sizes)
    family = "darts" if isinstance(sp, DartsSpace) else name  # DARTS-style cell spaces (lanas-cell) build as DARTS
    defaults = dict(DEFAULT_SIZES.get(family, {}))
    extra = EXTRA_OPTIONS.get(family, ())
    unknown = set(sizes) - set(defaults) - {"affine", *extra}
    if unknown:
        raise NasagentError(f"network size option(s) {', '.join(sorted(unknown))} unknown for space {name!r}; "
                            f"options: {', '.join([*defaults, *extra])}")
    if family == "darts":
        from nasagent.evaluation.networks.darts import STEMS

        if sizes.get("stem", "cifar") not in STEMS:
            raise NasagentError(f"unknown DARTS stem {sizes['stem']!r}; stems: {', '.join(STEMS)}")
    cfg = {**defaults, **sizes}
    check_sizes(cfg)
    try:
        return _instantiate(sp, name, family, arch, num_classes, input_shape, cfg)
    except ValueError as e:  # a size the network's own checks refuse (e.g. NASNet's odd C)
        raise NasagentError(f"cannot build this {name} network with {cfg}: {e}") from None


def check_sizes(sizes: dict) -> None:
    """Widths and depths (C, N, layers) must be whole numbers >= 1: refused here, in one line."""
    for key in ("C", "N", "layers"):
        value = sizes.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NasagentError(f"network size {key} must be an integer >= 1, got {value!r}")


def _instantiate(sp, name, family, arch, num_classes, input_shape, cfg):
    if name == "nb201":
        from nasagent.evaluation.networks.nb201 import NB201Network, arch_region

        return NB201Network(arch_region(arch), num_classes=num_classes, in_channels=input_shape[0], **cfg)
    if family == "darts":
        from nasagent.evaluation.networks.darts import DartsGenotypeNetwork

        return DartsGenotypeNetwork(arch, num_classes=num_classes, in_channels=input_shape[0], **cfg)
    if name == "nasnet":
        try:
            from nasagent.evaluation.networks.nasnet import NASNetNetwork
        except ImportError as e:
            raise NasagentError(f"NASNet-style networks are not available yet: {e}") from None
        return NASNetNetwork(sp, arch, num_classes=num_classes, in_channels=input_shape[0], **cfg)
    raise NasagentError(f"no network builder for space {name!r}; buildable spaces: nb201, darts, nasnet")


def check_input(model, input_shape) -> None:
    """Raise ``NasagentError`` if ``model`` cannot take images of ``input_shape``."""
    torch = _torch()
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    except RuntimeError as e:
        c, h, w = input_shape
        raise NasagentError(
            f"this network cannot take {c}x{h}x{w} images ({str(e).splitlines()[0]}); "
            "use larger images (resize them) or a network with fewer reductions"
        ) from None
    finally:
        model.train(was)
