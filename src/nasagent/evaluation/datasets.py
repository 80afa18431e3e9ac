"""Image-classification data for training candidates: embedded digits, a harder derived task, a user's files.

Every loader returns a ``Dataset``: float32 images in NCHW layout, integer labels 0..K-1 and seeded
train/validation/test splits (stratified by class). Searches score on *validation*; *test* is only reported.
Images are standardised per channel with the training split's mean and standard deviation.

Specs understood by ``load_dataset``:

- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes). Easy: small CNNs reach ~98 %.
- ``digits16``: the same digits upscaled to 16x16, then a seeded random affine distortion (rotation, scale,
  shear, translation), a random contrast and additive Gaussian noise per image, so accuracies spread out
  instead of saturating. ``copies`` distorted versions of each source image may be drawn; splits are made
  by *source* image, so no digit appears in two splits.
- a path to a ``.npz`` file with arrays ``x`` (N,H,W), (N,C,H,W) or (N,H,W,C) and ``y`` (N,); optional
  ``x_val/y_val`` and ``x_test/y_test`` arrays are used as the validation/test splits instead of a split.
- a path to an image folder ``root/<class name>/<image files>`` (PNG, JPEG, BMP, GIF).

The data ``seed`` fixes the splits and the distortions (the identity of the task); a training seed (weight
initialisation, batch order) is separate and belongs to the trainer.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
EMBEDDED = {
    "digits": "scikit-learn digits, 8x8 grey images, 10 classes (1,797)",
    "digits16": "digits upscaled to 16x16 with seeded affine distortion, contrast jitter and noise (harder)",
}


@dataclass
class Dataset:
    """Seeded splits of one classification task, ready for training (float32 NCHW, int64 labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    seed: int = 0
    classes: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()  # per channel, of the training split: images were standardised with it
    std: tuple[float, ...] = ()
    pixels: str = ""  # how raw pixels were scaled before standardising (for users of an exported network)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        if which not in ("train", "val", "test"):
            raise NasagentError(f"unknown split {which!r}; splits are train, val, test")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")

    def fingerprint(self) -> str:
        """Short hash of the data itself: caches and checkpoints keyed by it never mix two tasks."""
        h = hashlib.sha1()
        for a in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:12]

    def describe(self) -> str:
        c, hh, ww = self.input_shape
        return (
            f"{self.name}: {self.num_classes} classes, {c}x{hh}x{ww} images, "
            f"{len(self.y_train)}/{len(self.y_val)}/{len(self.y_test)} train/val/test (data seed {self.seed})"
        )


# -------------------------------------------------------------------------------------------------------
def load_dataset(
    spec: str = "digits",
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    copies: int = 1,
    noise: float = 0.15,
    layout: str = "auto",
    resize: tuple[int, int] | None = None,
) -> Dataset:
    """Load ``spec`` (see the module docstring) with seeded, stratified splits.

    ``copies`` and ``noise`` only apply to ``digits16``; ``layout`` ("auto", "nchw", "nhwc") to ``.npz``
    files; ``resize`` (height, width) to image folders whose images differ in size.
    """
    _check_fractions(val_fraction, test_fraction)
    spec = str(spec)
    if spec == "digits":
        x, y = _digits8()
        ds = _split_and_pack("digits", x, y, None, seed, val_fraction, test_fraction, tuple(str(i) for i in range(10)))
        return replace(ds, pixels="scikit-learn's digits: values 0..16 divided by 16")
    if spec == "digits16":
        if int(copies) < 1:
            raise NasagentError(f"digits16 copies must be >= 1, got {copies}")
        if not (0 <= float(noise) < 5):
            raise NasagentError(f"digits16 noise must be in [0, 5), got {noise}")
        x8, y = _digits8()
        x, groups = _digits16(int(seed), int(copies), float(noise))
        y = np.repeat(y, int(copies))
        ds = _split_and_pack("digits16", x, y, groups, seed, val_fraction, test_fraction, tuple(str(i) for i in range(10)))
        return replace(ds, pixels="nasagent's digits16: 16x16 distortions of the 8x8 digits divided by 16")
    path = Path(spec).expanduser()
    if path.suffix == ".npz":
        if not path.is_file():
            raise NasagentError(f"dataset file {path} does not exist")
        return replace(_load_npz(path, seed, val_fraction, test_fraction, layout),
                       pixels="the file's arrays, divided by 255 when their values exceed 1.5 (0..255 pixels)")
    if path.is_dir():
        return replace(_load_folder(path, seed, val_fraction, test_fraction, resize), pixels="image pixels 0..255 divided by 255")
    raise NasagentError(
        f"unknown dataset {spec!r}: use digits, digits16, a .npz file with arrays x and y, or an image folder "
        "root/<class>/<images>"
    )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (0 < float(f) < 1):
            raise NasagentError(f"{name} must be in (0, 1), got {f}")
    if val_fraction + test_fraction >= 0.9:
        raise NasagentError(f"val_fraction + test_fraction = {val_fraction + test_fraction:.2f} leaves too little to train on")


# -- embedded tasks -------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _digits8() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return x, d.target.astype(np.int64)


@lru_cache(maxsize=4)
def _digits16(seed: int, copies: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` distorted 16x16 versions of every digit, and the source index of each (for splitting)."""
    from scipy import ndimage

    x8, _ = _digits8()
    rng = np.random.default_rng([seed, 16])
    n = len(x8)
    out = np.empty((n * copies, 1, 16, 16), dtype=np.float32)
    centre = np.array([7.5, 7.5])
    for i in range(n):
        big = ndimage.zoom(x8[i, 0], 2.0, order=1)
        for c in range(copies):
            angle = np.deg2rad(rng.uniform(-25, 25))
            scale = rng.uniform(0.8, 1.15, size=2)
            shear = rng.uniform(-0.3, 0.3)
            shift = rng.uniform(-2.0, 2.0, size=2)
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            m = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
            inv = np.linalg.inv(m)  # affine_transform maps output coordinates to input coordinates
            offset = centre - inv @ (centre + shift)
            img = ndimage.affine_transform(big, inv, offset=offset, order=1, mode="constant", cval=0.0)
            img = img * rng.uniform(0.5, 1.0) + rng.uniform(0.0, 0.3)  # contrast and brightness
            img = img + noise * rng.standard_normal(img.shape)
            out[i * copies + c, 0] = img
    return out, np.repeat(np.arange(n), copies)


# -- user files -----------------------------------------------------------------------------------------------
def _load_npz(path: Path, seed: int, val_fraction: float, test_fraction: float, layout: str) -> Dataset:
    try:
        if not zipfile.is_zipfile(path):
            raise NasagentError(f"{path} is not a .npz archive; write one with numpy.savez(path, x=images, y=labels)")
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise NasagentError(f"cannot read {path} as a .npz file: {e}") from None
    with data:
        keys = set(data.files)
        missing = {"x", "y"} - keys
        if missing:
            raise NasagentError(f"{path} lacks array(s) {', '.join(sorted(missing))}; it has: {', '.join(sorted(keys)) or 'none'}")
        arrays = {k: data[k] for k in keys}
    x = _images(arrays["x"], layout, f"{path}: x")
    y_raw = _labels(arrays["y"], len(x), f"{path}: y", x_name="x")
    extra = {}
    for part in ("val", "test"):
        kx, ky = f"x_{part}", f"y_{part}"
        if (kx in keys) != (ky in keys):
            raise NasagentError(f"{path} has {kx if kx in keys else ky} but not {ky if kx in keys else kx}; give both or neither")
        if kx in keys:
            xs = _images(arrays[kx], layout, f"{path}: {kx}")
            if xs.shape[1:] != x.shape[1:]:
                raise NasagentError(f"{path}: {kx} images are {xs.shape[1:]} but x images are {x.shape[1:]}")
            extra[part] = (xs, _labels(arrays[ky], len(xs), f"{path}: {ky}", x_name=kx))
    classes, y_all = np.unique(np.concatenate([y_raw, *(v[1] for v in extra.values())]), return_inverse=True)
    y_all = y_all.astype(np.int64)
    y = y_all[: len(y_raw)]
    names = tuple(str(c) for c in classes)
    if not extra:
        return _split_and_pack(path.stem, x, y, None, seed, val_fraction, test_fraction, names)
    offset = len(y_raw)
    given = {}
    for part, (xs, _) in extra.items():
        given[part] = (xs, y_all[offset : offset + len(xs)])
        offset += len(xs)
    return _pack_with_given(path.stem, x, y, given, seed, val_fraction, test_fraction, names)


def _images(x: np.ndarray, layout: str, what: str) -> np.ndarray:
    if layout not in ("auto", "nchw", "nhwc"):
        raise NasagentError(f"layout must be auto, nchw or nhwc, got {layout!r}")
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise NasagentError(f"{what} must be a numeric array, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if layout == "nhwc" or (layout == "auto" and x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)):
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    else:
        raise NasagentError(f"{what} must have shape (N,H,W), (N,C,H,W) or (N,H,W,C); got {x.shape}")
    if len(x) == 0:
        raise NasagentError(f"{what} holds no images")
    if not np.isfinite(x).all():
        raise NasagentError(f"{what} contains NaN or infinite values")
    if x.max() > 1.5:  # 0..255 pixels: scale to 0..1 so standardisation starts from a familiar range
        x = x / 255.0
    return x


def _labels(y: np.ndarray, n: int, what: str, x_name: str = "x") -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise NasagentError(f"{what} must be one label per image (shape (N,)), got shape {y.shape}")
    if len(y) != n:
        raise NasagentError(f"{what} has {len(y)} labels but {x_name} has {n} images; they must have the same length")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise NasagentError(f"{what} must hold class labels (integers or strings), got non-integer numbers")
        y = y.astype(np.int64)
    return y


def _load_folder(root: Path, seed: int, val_fraction: float, test_fraction: float, resize) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise NasagentError(f"image folder {root} has no class sub-folders; expected {root}/<class>/<image files>")
    files, labels = [], []
    for k, d in enumerate(class_dirs):
        imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not imgs:
            raise NasagentError(f"class folder {d} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        files += imgs
        labels += [k] * len(imgs)
    pics, size = [], None
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                pics.append(im.copy())
        except (OSError, UnidentifiedImageError) as e:
            raise NasagentError(f"cannot read image {f}: {e}") from None
    colour = any(p.mode not in ("L", "1", "I", "I;16", "F") for p in pics)
    arrays = []
    for f, p in zip(files, pics, strict=True):
        p = p.convert("RGB" if colour else "L")
        if resize is not None:
            p = p.resize((int(resize[1]), int(resize[0])))
        a = np.asarray(p, dtype=np.float32) / 255.0
        a = a.transpose(2, 0, 1) if a.ndim == 3 else a[None]
        if size is None:
            size = a.shape
        elif a.shape != size:
            raise NasagentError(
                f"image {f} is {a.shape[2]}x{a.shape[1]} but earlier images are {size[2]}x{size[1]}; "
                "all images must have one size (or pass resize=(H, W))"
            )
        arrays.append(a)
    x = np.stack(arrays)
    y = np.asarray(labels, dtype=np.int64)
    return _split_and_pack(root.name, x, y, None, seed, val_fraction, test_fraction, tuple(d.name for d in class_dirs))


# -- splitting ------------------------------------------------------------------------------------------------
def _check_classes(y: np.ndarray, names: tuple[str, ...], what: str, need: int) -> int:
    counts = np.bincount(y)
    present = int((counts > 0).sum())
    if present < 2:
        only = names[int(np.argmax(counts))] if names else str(int(np.argmax(counts)))
        raise NasagentError(f"{what} has a single class ({only!r}); classification needs at least 2 classes")
    small = np.flatnonzero((counts > 0) & (counts < need))
    if len(small):
        k = int(small[0])
        label = names[k] if k < len(names) else str(k)
        raise NasagentError(
            f"{what}: class {label!r} has {counts[k]} example(s); every class needs at least {need} "
            "so that each split holds one"
        )
    return len(counts)


def _stratified_split(y: np.ndarray, seed: int, val_fraction: float, test_fraction: float):
    """Index arrays (train, val, test): each class split in the given proportions, seeded."""
    rest, te = _holdout(y, np.arange(len(y)), [seed, 7], test_fraction)
    tr, va = _holdout(y, rest, [seed, 8], val_fraction / (1 - test_fraction))
    return tr, va, te


def _holdout(y: np.ndarray, idx: np.ndarray, seed, fraction: float):
    """(kept, held-out) subsets of ``idx``: per class, ``fraction`` (at least one) is held out."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for c in np.unique(y[idx]):
        members = rng.permutation(idx[y[idx] == c])
        n_held = min(max(1, int(round(fraction * len(members)))), len(members) - 1)
        held.append(members[:n_held])
        kept.append(members[n_held:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def _split_and_pack(name, x, y, groups, seed, val_fraction, test_fraction, names) -> Dataset:
    if len(x) != len(y):
        raise NasagentError(f"{name}: {len(x)} images but {len(y)} labels; they must have the same length")
    if groups is None:
        k = _check_classes(y, names, name, need=3)
        tr, va, te = _stratified_split(y, seed, val_fraction, test_fraction)
    else:  # split the sources, then take every copy of a source into that source's split
        first = np.unique(groups, return_index=True)[1]
        src_y = y[first]
        k = _check_classes(src_y, names, name, need=3)
        s_tr, s_va, s_te = _stratified_split(src_y, seed, val_fraction, test_fraction)
        where = {}
        for part, srcs in enumerate((s_tr, s_va, s_te)):
            for s in srcs:
                where[int(s)] = part
        part_of = np.array([where[int(g)] for g in groups])
        tr, va, te = (np.flatnonzero(part_of == p) for p in range(3))
    return _pack(name, x[tr], y[tr], x[va], y[va], x[te], y[te], k, seed, names)


def _pack_with_given(name, x, y, given, seed, val_fraction, test_fraction, names) -> Dataset:
    """Use the file's own validation/test splits; split ``x`` only for the ones it lacks."""
    k = max(int(y.max()), *(int(v[1].max()) for v in given.values())) + 1
    if "val" in given and "test" in given:
        _check_classes(y, names, name, need=1)
        return _pack(name, x, y, *given["val"], *given["test"], k, seed, names)
    missing = "test" if "val" in given else "val"
    _check_classes(y, names, name, need=2)
    tr, held = _holdout(y, np.arange(len(y)), [seed, 9], test_fraction if missing == "test" else val_fraction)
    split = {missing: (x[held], y[held]), **given}
    return _pack(name, x[tr], y[tr], *split["val"], *split["test"], k, seed, names)


def _pack(name, xtr, ytr, xva, yva, xte, yte, k, seed, names) -> Dataset:
    mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
    std = xtr.std(axis=(0, 2, 3), keepdims=True)
    std = np.where(std < 1e-6, 1.0, std)

    def norm(a):
        return ((a - mean) / std).astype(np.float32)

    return Dataset(
        name=name,
        x_train=norm(xtr), y_train=ytr.astype(np.int64),
        x_val=norm(xva), y_val=yva.astype(np.int64),
        x_test=norm(xte), y_test=yte.astype(np.int64),
        num_classes=int(k), seed=int(seed), classes=tuple(names),
        mean=tuple(float(m) for m in mean.ravel()), std=tuple(float(v) for v in std.ravel()),
    )


def subsample(data: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A smaller training split (stratified), e.g. for quick tests; validation and test stay whole."""
    if not (0 < fraction <= 1):
        raise NasagentError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng([seed, 11])
    keep = []
    for c in np.unique(data.y_train):
        idx = np.flatnonzero(data.y_train == c)
        keep.append(rng.permutation(idx)[: max(1, math.ceil(fraction * len(idx)))])
    keep = np.sort(np.concatenate(keep))
    return replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
