"""Gradient compression for data-parallel training (thesis Ch. 7): FFT sparsification + range-based N-bit floats.

A codec turns a flat float gradient into one self-describing ``uint8`` payload and back. The payload *is*
what a worker sends, so ``len(payload)`` is the true byte count: kept values, the bitmap (or indices) and
every header byte. For a given codec and gradient length the payload length is fixed, so workers can
exchange payloads with a plain ``all_gather`` (``systems.comm_hook`` wires this into DDP).

Sender pipeline of the thesis (Fig. 7.3), ``FFTCodec``: flatten -> FP16 (emulated on CPU) -> FFT -> keep the
largest components by magnitude -> range-based N-bit quantization -> pack with a bitmap. The receiver
inverts each step. Decisions where the thesis is ambiguous (docs/systems.md explains each):

- theta is the fraction of frequency components *dropped* (theta = 0.85 keeps 15 %), as in Sec. 7.3.1.
- A real FFT (``rfft``) of the gradient: N real values give N/2+1 complex coefficients, each kept one costs
  two reals, so theta keeps about (1-theta)*N reals, as top-k at the same theta. ``real_fft=False`` uses the
  full complex FFT of the seed (twice the values for the same theta).
- ``norm="ortho"`` so coefficient magnitudes do not grow with N, and a per-message scale (the largest kept
  magnitude, one float32 header) maps kept values onto the quantizer's [-1, 1] range. ``per_message_scale=
  False`` restores the seed's fixed [min, max] range.
- Values are rounded to the nearest representable N-bit float; ``rounding="truncate"`` is the seed's shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nasagent.core import NasagentError

_F32 = 4


# -- byte helpers ---------------------------------------------------------------------------------------------
def pack_bits(values: torch.Tensor, width: int) -> torch.Tensor:
    """Pack non-negative integers (< 2**width) into a little-endian bit stream of uint8."""
    v = values.to(torch.int32).reshape(-1, 1)
    shifts = torch.arange(width, dtype=torch.int32, device=v.device)
    return pack_bool(((v >> shifts) & 1).reshape(-1))


def unpack_bits(data: torch.Tensor, width: int, count: int) -> torch.Tensor:
    """Inverse of ``pack_bits``: ``count`` integers of ``width`` bits (int64)."""
    bits = unpack_bool(data, count * width).to(torch.int32).reshape(count, width)
    shifts = torch.arange(width, dtype=torch.int32, device=data.device)
    return (bits << shifts).sum(dim=1, dtype=torch.int32).to(torch.int64)


def pack_bool(mask: torch.Tensor) -> torch.Tensor:
    """A 0/1 vector as a bitmap, 8 entries per byte, least significant bit first (the thesis' status vector)."""
    m = mask.reshape(-1).to(torch.uint8)
    pad = (-m.numel()) % 8
    if pad:
        m = torch.cat([m, m.new_zeros(pad)])
    m = m.reshape(-1, 8)
    out = m[:, 0].clone()
    for i in range(1, 8):
        out |= m[:, i] << i
    return out


def unpack_bool(data: torch.Tensor, count: int) -> torch.Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=data.device)
    return ((data.reshape(-1, 1) >> shifts) & 1).reshape(-1)[:count].bool()


def bitmap_pack(sparse: torch.Tensor, status: torch.Tensor) -> torch.Tensor:
    """Thesis Sec. 7.3.2 packing: ``location = prefix_sum(status)``; ``dense[location[i]-1] = sparse[i]``."""
    location = torch.cumsum(status.to(torch.int64), dim=0)
    dense = sparse.new_empty(int(location[-1]) if location.numel() else 0)
    dense[location[status] - 1] = sparse[status]
    return dense


def bitmap_unpack(dense: torch.Tensor, status: torch.Tensor) -> torch.Tensor:
    """Scatter ``dense`` back to the positions where ``status`` is set (zeros elsewhere)."""
    out = dense.new_zeros(status.numel())
    out[status] = dense
    return out


def _f32_bytes(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float32).contiguous().reshape(-1).view(torch.uint8)


def _bytes_f32(b: torch.Tensor) -> torch.Tensor:
    return b.clone().view(torch.float32)  # clone: a slice of a payload may sit at an unaligned offset


class _Reader:
    """Walks a payload left to right."""

    def __init__(self, payload: torch.Tensor):
        self.p = payload
        self.at = 0

    def take(self, n: int) -> torch.Tensor:
        out = self.p[self.at : self.at + n]
        if out.numel() != n:
            raise NasagentError(f"compressed payload is truncated: needed {n} bytes at offset {self.at}, have {self.p.numel() - self.at}")
        self.at += n
        return out


# -- range-based N-bit float (Sec. 7.3.2) ---------------------------------------------------------------------
def _float_bits(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)


def _bits_float(b: torch.Tensor) -> torch.Tensor:
    return b.to(torch.int32).view(torch.float32)


@dataclass
class RangeQuantizer:
    """The thesis' offset-based N-bit float: 8 exponent bits + ``mantissa`` bits, offset by ``pbase``.

    A magnitude's code is ``(bits(|x|) >> (23-m)) - pbase + 1``: the smallest representable magnitude
    ``eps`` has code 1, and the spacing doubles every 2**m codes (dense near zero, Gaussian-like). Code 0 is
    exact zero (our addition: magnitudes below eps/2 would otherwise be lost), codes 1..P are positive and
    P+1..2**N-1 negative. ``eps`` is tuned as in the thesis so that the negative codes just reach ``lo``
    (P close to 2**N/2); ``mantissa=None`` tries every m and keeps the one with the least squared error on
    the values given to ``calibrate`` (or on a Gaussian sample if never calibrated).
    """

    bits: int = 10
    mantissa: int | None = None
    lo: float = -1.0
    hi: float = 1.0
    rounding: str = "nearest"  # "truncate" is the seed's plain shift

    def __post_init__(self) -> None:
        if not 2 <= int(self.bits) <= 16:
            raise NasagentError(f"quantizer bits must be in [2, 16], got {self.bits}")
        if not (self.lo < 0 < self.hi):
            raise NasagentError(f"quantizer range must contain zero (lo < 0 < hi), got [{self.lo}, {self.hi}]")
        if self.rounding not in ("nearest", "truncate"):
            raise NasagentError(f"rounding must be 'nearest' or 'truncate', got {self.rounding!r}")
        if self.mantissa is not None and not 0 <= int(self.mantissa) <= 23:
            raise NasagentError(f"mantissa bits must be in [0, 23], got {self.mantissa}")
        self.pbase = 0
        if self.mantissa is not None:
            self.pbase = self._tune_pbase(int(self.mantissa))

    # thesis: start from eps, decode the all-ones code; actual_min < min -> decrease eps, else increase
    def _tune_pbase(self, m: int) -> int:
        shift = 23 - m
        top = int(_float_bits(torch.tensor(self.hi)) >> shift)
        bottom = int(_float_bits(torch.tensor(-self.lo)) >> shift)
        lo_p, hi_p = 1, max(top, 1)
        while lo_p < hi_p:  # smallest pbase (finest eps) whose negative codes still reach `lo`
            pbase = (lo_p + hi_p) // 2
            positives = max(top - pbase + 1, 1)
            negatives = 2**self.bits - 1 - positives
            reaches = negatives >= bottom - pbase + 1
            if reaches:
                hi_p = pbase  # actual_min <= min: eps can shrink
            else:
                lo_p = pbase + 1  # actual_min > min: eps must grow
        return lo_p

    def _counts(self, m: int, pbase: int) -> tuple[int, int]:
        """Codes used by positive and negative magnitudes (fewer than 2**N-1 when m is too small to fill them)."""
        top = int(_float_bits(torch.tensor(self.hi)) >> (23 - m))
        bottom = int(_float_bits(torch.tensor(-self.lo)) >> (23 - m))
        positives = min(max(top - pbase + 1, 1), 2**self.bits - 2)
        return positives, max(1, min(2**self.bits - 1 - positives, bottom - pbase + 1))

    @property
    def eps(self) -> float:
        m = self.m
        return float(_bits_float(torch.tensor(self.pbase << (23 - m))))

    @property
    def m(self) -> int:
        if self.mantissa is None:  # never calibrated: a fixed Gaussian sample spanning the range
            sample = torch.randn(4096, generator=torch.Generator().manual_seed(0)).clamp(-3, 3) / 3
            self.calibrate(sample * self.hi)
        return int(self.mantissa)

    def calibrate(self, values: torch.Tensor) -> RangeQuantizer:
        """Pick the mantissa width with the least squared error on ``values`` (already in [lo, hi])."""
        v = values.detach().reshape(-1).to(torch.float32).clamp(self.lo, self.hi)
        best = None
        for m in range(0, min(23, self.bits) + 1):
            self.mantissa, self.pbase = m, self._tune_pbase(m)
            err = float(((self.decode(self.encode(v)) - v) ** 2).mean())
            if best is None or err < best[0]:
                best = (err, m)
        self.mantissa = best[1]
        self.pbase = self._tune_pbase(best[1])
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes in [0, 2**bits) (int64) for values of ``x`` clamped to [lo, hi]."""
        m = self.m
        shift = 23 - m
        positives, negatives = self._counts(m, self.pbase)
        x = x.to(torch.float32).clamp(self.lo, self.hi)
        b = _float_bits(x.abs())
        if self.rounding == "nearest" and shift > 0:
            b = b + (1 << (shift - 1))
        idx = (b >> shift) - self.pbase + 1
        tiny = x.abs() < (self.eps * 0.5 if self.rounding == "nearest" else self.eps)
        pos = torch.where(tiny, 0, idx.clamp(1, positives))
        neg = torch.where(tiny, 0, positives + idx.clamp(1, negatives))
        return torch.where(x >= 0, pos, neg)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        m = self.m
        positives, _ = self._counts(m, self.pbase)
        c = codes.to(torch.int64)
        idx = torch.where(c > positives, c - positives, c)
        mag = _bits_float((idx - 1 + self.pbase) << (23 - m))
        val = torch.where(c > positives, -mag, mag)
        return torch.where(c == 0, torch.zeros_like(val), val)

    def header(self) -> torch.Tensor:
        """Mantissa width and pbase (5 bytes), so a receiver needs no shared calibration."""
        return torch.cat([torch.tensor([self.m], dtype=torch.uint8), torch.tensor([self.pbase], dtype=torch.int32).view(torch.uint8)])

    HEADER_BYTES = 5

    def from_header(self, h: torch.Tensor) -> RangeQuantizer:
        q = RangeQuantizer(self.bits, None, self.lo, self.hi, self.rounding)
        q.mantissa = int(h[0])
        q.pbase = int(h[1:5].clone().view(torch.int32)[0])
        return q


# -- codecs ---------------------------------------------------------------------------------------------------
class Codec:
    """Compress a flat float tensor into a fixed-length uint8 payload; ``decode`` inverts it (lossily)."""

    name = "codec"

    def encode(self, flat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, payload: torch.Tensor, numel: int) -> torch.Tensor:
        raise NotImplementedError

    def payload_bytes(self, numel: int) -> int:
        """Bytes of the payload for a gradient of ``numel`` values (no data needed)."""
        return int(self.encode(torch.zeros(numel)).numel())

    def ratio(self, numel: int) -> float:
        """True compression ratio against float32: 4*numel / payload bytes."""
        return _F32 * numel / self.payload_bytes(numel)


class NoCompression(Codec):
    """float32 as is (4 bytes a value)."""

    name = "none"

    def encode(self, flat):
        return _f32_bytes(flat).clone()

    def decode(self, payload, numel):
        return _bytes_f32(payload)[:numel].clone()

    def payload_bytes(self, numel):
        return _F32 * numel


def _check_theta(theta: float) -> float:
    theta = float(theta)
    if not 0.0 <= theta < 1.0:
        raise NasagentError(f"theta is the fraction of components dropped and must be in [0, 1), got {theta}")
    return theta


def _kept(theta: float, n: int) -> int:
    return max(1, min(n, int(round((1.0 - theta) * n))))


class _SparseValues:
    """Shared value encoding of the sparsifying codecs: float32, or scaled range-quantized codes."""

    def __init__(self, quantizer: RangeQuantizer | None, per_message_scale: bool):
        self.quantizer = quantizer
        self.per_message_scale = per_message_scale

    def nbytes(self, count: int) -> int:
        if self.quantizer is None:
            return _F32 * count
        return _F32 * self.per_message_scale + RangeQuantizer.HEADER_BYTES + math.ceil(count * self.quantizer.bits / 8)

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        if self.quantizer is None:
            return _f32_bytes(values)
        q = self.quantizer
        parts = []
        if self.per_message_scale:
            scale = values.abs().max().clamp_min(1e-30).to(torch.float32).reshape(1)
            parts.append(_f32_bytes(scale))
            values = values / scale * q.hi
        if q.mantissa is None or getattr(self, "_provisional", False):
            # calibrate once, on the first message (the thesis: "first few iterations") that says anything: an
            # all-zero message fits every width alike and would lock in the narrowest; until then, the default
            if bool((values != 0).any()) and bool(torch.isfinite(values).all()):
                q.calibrate(values)
                self._provisional = False
            else:
                self._provisional = True
        parts += [q.header(), pack_bits(q.encode(values), q.bits)]
        return torch.cat(parts)

    def decode(self, reader: _Reader, count: int) -> torch.Tensor:
        if self.quantizer is None:
            return _bytes_f32(reader.take(_F32 * count)).clone()
        scale = _bytes_f32(reader.take(_F32))[0] / self.quantizer.hi if self.per_message_scale else None
        q = self.quantizer.from_header(reader.take(RangeQuantizer.HEADER_BYTES))
        vals = q.decode(unpack_bits(reader.take(math.ceil(count * q.bits / 8)), q.bits, count))
        return vals * scale if scale is not None else vals


class FFTCodec(Codec):
    """FFT sparsification with range-based quantization (thesis Fig. 7.3).

    ``theta``: fraction of frequency components dropped (0.85 keeps 15 %). ``bits``: width of the range-based
    floats (10 in the thesis; ``None`` sends float32 values). ``fp16``: round the gradient through half
    precision first, as the thesis does for cuFFT throughput. ``pad``: zero-pad to a fast FFT length. Payload: [scale][quantizer header][bitmap of the
    kept coefficients][codes of their real and imaginary parts].
    """

    name = "fft"

    def __init__(self, theta: float = 0.85, bits: int | None = 10, fp16: bool = True, real_fft: bool = True,
                 per_message_scale: bool = True, rounding: str = "nearest", mantissa: int | None = None, pad: bool = True):
        self.theta = _check_theta(theta)
        self.fp16 = fp16
        self.real_fft = real_fft
        self.pad = pad
        quantizer = RangeQuantizer(bits, mantissa, rounding=rounding) if bits is not None else None
        self.values = _SparseValues(quantizer, per_message_scale)

    def _length(self, n: int) -> int:
        """FFT length: n zero-padded to the next 2-3-5-smooth size (a prime n makes the FFT ~20x slower)."""
        from scipy.fft import next_fast_len

        return int(next_fast_len(n, real=self.real_fft)) if self.pad else n

    def _ncoef(self, n: int) -> int:
        length = self._length(n)
        return length // 2 + 1 if self.real_fft else length

    def encode(self, flat):
        x = flat.detach().reshape(-1).to(torch.float32)
        if self.fp16:
            x = x.half().float()
        length = self._length(x.numel())
        if length > x.numel():
            x = torch.cat([x, x.new_zeros(length - x.numel())])
        coef = torch.fft.rfft(x, norm="ortho") if self.real_fft else torch.fft.fft(x, norm="ortho")
        k = _kept(self.theta, coef.numel())
        keep = torch.topk(coef.abs(), k, sorted=False).indices
        status = torch.zeros(coef.numel(), dtype=torch.bool, device=x.device)
        status[keep] = True
        dense = bitmap_pack(coef, status)  # kept coefficients in index order
        return torch.cat([pack_bool(status), self.values.encode(torch.view_as_real(dense).reshape(-1))])

    def decode(self, payload, numel):
        ncoef = self._ncoef(numel)
        r = _Reader(payload)
        status = unpack_bool(r.take(math.ceil(ncoef / 8)), ncoef)
        k = int(status.sum())
        dense = torch.view_as_complex(self.values.decode(r, 2 * k).reshape(k, 2).contiguous())
        coef = bitmap_unpack(dense, status)
        length = self._length(numel)
        if self.real_fft:
            return torch.fft.irfft(coef, n=length, norm="ortho")[:numel].contiguous()
        return torch.fft.ifft(coef, n=length, norm="ortho").real[:numel].contiguous()

    def payload_bytes(self, numel):
        ncoef = self._ncoef(numel)
        return math.ceil(ncoef / 8) + self.values.nbytes(2 * _kept(self.theta, ncoef))


class TopKCodec(Codec):
    """Plain top-k sparsification (the thesis' "vanilla" baseline): keep the (1-theta) largest |g|.

    ``index``: "bitmap" (N bits, as the thesis packs) or "int32" (4 bytes per kept value); ``bits`` optionally
    quantizes the kept values with the same range-based floats as ``FFTCodec`` (None: float32, the seed).
    """

    name = "topk"

    def __init__(self, theta: float = 0.85, bits: int | None = None, index: str = "bitmap",
                 per_message_scale: bool = True, rounding: str = "nearest"):
        self.theta = _check_theta(theta)
        if index not in ("bitmap", "int32"):
            raise NasagentError(f"top-k index format must be 'bitmap' or 'int32', got {index!r}")
        self.index = index
        quantizer = RangeQuantizer(bits, rounding=rounding) if bits is not None else None
        self.values = _SparseValues(quantizer, per_message_scale)

    def encode(self, flat):
        x = flat.detach().reshape(-1).to(torch.float32)
        k = _kept(self.theta, x.numel())
        keep = torch.topk(x.abs(), k, sorted=False).indices.sort().values
        if self.index == "int32":
            head = keep.to(torch.int32).view(torch.uint8)
        else:
            status = torch.zeros(x.numel(), dtype=torch.bool, device=x.device)
            status[keep] = True
            head = pack_bool(status)
        return torch.cat([head, self.values.encode(x[keep])])

    def decode(self, payload, numel):
        r = _Reader(payload)
        k = _kept(self.theta, numel)
        if self.index == "int32":
            keep = r.take(4 * k).clone().view(torch.int32).to(torch.int64)
        else:
            keep = torch.nonzero(unpack_bool(r.take(math.ceil(numel / 8)), numel)).reshape(-1)
        out = torch.zeros(numel, dtype=torch.float32, device=payload.device)
        out[keep] = self.values.decode(r, k)
        return out

    def payload_bytes(self, numel):
        k = _kept(self.theta, numel)
        head = 4 * k if self.index == "int32" else math.ceil(numel / 8)
        return head + self.values.nbytes(k)


class QSGDCodec(Codec):
    """QSGD (Alistarh et al.): ||g||_2 * sign * xi/s, xi stochastic in {0..s}; sign + level bits per value."""

    name = "qsgd"

    def __init__(self, levels: int = 8, seed: int = 0):
        if int(levels) < 1:
            raise NasagentError(f"QSGD needs at least one level, got {levels}")
        self.levels = int(levels)
        self.width = 1 + max(1, math.ceil(math.log2(self.levels + 1)))
        self.gen = torch.Generator().manual_seed(int(seed))

    def encode(self, flat):
        x = flat.detach().reshape(-1).to(torch.float32)
        norm = x.norm().clamp_min(1e-30).reshape(1)
        scaled = x.abs() / norm * self.levels
        level = torch.floor(scaled + torch.rand(x.numel(), generator=self.gen).to(x.device)).clamp(0, self.levels)
        codes = level.to(torch.int64) * 2 + (x < 0).to(torch.int64)
        return torch.cat([_f32_bytes(norm), pack_bits(codes, self.width)])

    def decode(self, payload, numel):
        r = _Reader(payload)
        norm = _bytes_f32(r.take(_F32))[0]
        codes = unpack_bits(r.take(math.ceil(numel * self.width / 8)), self.width, numel)
        sign = 1.0 - 2.0 * (codes & 1).to(torch.float32)
        return sign * (codes >> 1).to(torch.float32) / self.levels * norm

    def payload_bytes(self, numel):
        return _F32 + math.ceil(numel * self.width / 8)


class TernGradCodec(Codec):
    """TernGrad (Wen et al.): max|g| * {-1, 0, +1}, stochastic, 2 bits a value (no gradient clipping).

    ``exempt_tail=k`` sends the last ``k`` values as float32 instead, the TernGrad paper's exemption of the
    last layer: in a gradient flattened in ``model.parameters()`` order the classifier's weights and bias come
    last (``exempt_tail=sum of their sizes``). Their magnitude does not set the ternary scale of the rest.
    """

    name = "terngrad"

    def __init__(self, seed: int = 0, exempt_tail: int = 0):
        if int(exempt_tail) < 0:
            raise NasagentError(f"TernGrad exempt_tail must be >= 0 values, got {exempt_tail}")
        self.gen = torch.Generator().manual_seed(int(seed))
        self.exempt_tail = int(exempt_tail)

    def _split(self, numel: int) -> int:
        """How many leading values are ternarised (the rest are exempt)."""
        return max(numel - self.exempt_tail, 0)

    def encode(self, flat):
        x = flat.detach().reshape(-1).to(torch.float32)
        head, tail = x[: self._split(x.numel())], x[self._split(x.numel()) :]
        scale = (head.abs().max() if head.numel() else torch.ones(())).clamp_min(1e-30).reshape(1)
        fire = torch.rand(head.numel(), generator=self.gen).to(x.device) < head.abs() / scale
        codes = torch.where(fire, torch.where(head < 0, 2, 1), 0)
        return torch.cat([_f32_bytes(scale), pack_bits(codes, 2), _f32_bytes(tail)])

    def decode(self, payload, numel):
        r = _Reader(payload)
        scale = _bytes_f32(r.take(_F32))[0]
        n = self._split(numel)
        codes = unpack_bits(r.take(math.ceil(n * 2 / 8)), 2, n)
        head = torch.where(codes == 1, scale, torch.where(codes == 2, -scale, torch.zeros((), dtype=scale.dtype)))
        return torch.cat([head, _bytes_f32(r.take(_F32 * (numel - n)))])

    def payload_bytes(self, numel):
        n = self._split(numel)
        return _F32 + math.ceil(n / 4) + _F32 * (numel - n)


CODECS = {"none": NoCompression, "fft": FFTCodec, "topk": TopKCodec, "qsgd": QSGDCodec, "terngrad": TernGradCodec}


def make_codec(name: str, **options) -> Codec:
    """A codec by name ("none", "fft", "topk", "qsgd", "terngrad") with its constructor options."""
    if name not in CODECS:
        raise NasagentError(f"unknown gradient codec {name!r}; choose one of {', '.join(CODECS)}")
    try:
        return CODECS[name](**options)
    except TypeError as e:
        raise NasagentError(f"bad options for codec {name!r}: {e}") from None


def relative_error(original: torch.Tensor, reconstructed: torch.Tensor) -> float:
    """alpha = ||v - v_hat|| / ||v|| (thesis Assumption 3, Fig. 7.12)."""
    denom = float(original.norm())
    return float((original - reconstructed).norm()) / denom if denom > 0 else 0.0


def error_cdf(original: torch.Tensor, reconstructed: torch.Tensor, points: int = 200) -> tuple[list[float], list[float]]:
    """The CDF of the per-value error |v - v_hat| / max|v| (thesis Fig. 7.15): ``points`` (error, fraction <=)
    pairs at evenly spaced quantiles, so codecs with different error shapes can be overlaid."""
    v = original.detach().reshape(-1).to(torch.float64)
    err = ((v - reconstructed.detach().reshape(-1).to(torch.float64)).abs() / v.abs().max().clamp_min(1e-30)).sort().values
    q = torch.linspace(0, 1, points, dtype=torch.float64)
    idx = (q * (err.numel() - 1)).round().long()
    return err[idx].tolist(), q.tolist()


def gradient_histogram(grad: torch.Tensor, bins: int = 60) -> tuple[list[float], list[int]]:
    """Bin edges and counts of a gradient's values (thesis Fig. 7.15: most values sit near zero)."""
    v = grad.detach().reshape(-1).to(torch.float64)
    lim = float(v.abs().max().clamp_min(1e-30))
    counts = torch.histc(v, bins=bins, min=-lim, max=lim)
    edges = torch.linspace(-lim, lim, bins + 1, dtype=torch.float64)
    return edges.tolist(), [int(c) for c in counts.tolist()]


def theta_for_bytes(make, numel: int, target_bytes: int, lo: float = 0.0, hi: float = 0.9999) -> float:
    """The smallest theta whose ``make(theta)`` codec's payload fits in ``target_bytes`` (bisection).

    Used to compare codecs at equal true bytes. Raises when even the highest theta does not fit (e.g. a
    bitmap alone is larger than the budget).
    """
    if make(hi).payload_bytes(numel) > target_bytes:
        raise NasagentError(f"no theta <= {hi} fits {target_bytes} bytes for {numel} values: the fixed part (bitmap, headers) is too large")
    for _ in range(60):
        mid = (lo + hi) / 2
        if make(mid).payload_bytes(numel) <= target_bytes:
            hi = mid
        else:
            lo = mid
    return hi


# -- theta schedules (Sec. 7.3.4) ----------------------------------------------------------------------------
@dataclass
class ThetaSchedule:
    """theta_t for step t and learning rate lr.

    "constant": theta. "step": theta until ``at_step``, then ``after`` (the thesis' experiments: 0.9 -> 0 at
    the learning-rate decay). "sqrt-lr": min(theta, sqrt(L * lr)) from Theorem 3 (theta_t^2 = L * eta_t),
    with the smoothness constant ``lipschitz`` estimated by the caller (e.g. ``estimate_lipschitz``).
    """

    kind: str = "constant"
    theta: float = 0.85
    at_step: int = 0
    after: float = 0.0
    lipschitz: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "sqrt-lr"):
            raise NasagentError(f"theta schedule must be constant, step or sqrt-lr, got {self.kind!r}")
        _check_theta(self.theta)
        _check_theta(self.after)

    def __call__(self, step: int, lr: float | None = None) -> float:
        if self.kind == "constant":
            return self.theta
        if self.kind == "step":
            return self.theta if step < self.at_step else self.after
        if lr is None:
            raise NasagentError("the sqrt-lr theta schedule needs the current learning rate")
        return float(min(self.theta, math.sqrt(max(self.lipschitz * lr, 0.0))))


def estimate_lipschitz(loss_fn, params: list[torch.Tensor], iters: int = 10, seed: int = 0) -> float:
    """Largest Hessian eigenvalue of ``loss_fn()`` by power iteration on Hessian-vector products (L in Thm. 3)."""
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen) for p in params]
    lam = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((x**2).sum() for x in v))
        v = [x / norm for x in v]
        grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
        hv = torch.autograd.grad(grads, params, grad_outputs=v)
        lam = float(sum((a * b).sum() for a, b in zip(hv, v)))
        v = [h.detach() for h in hv]
    return abs(lam)


# -- performance model (Eq. 7.1-7.4) --------------------------------------------------------------------------
def min_useful_ratio(t_comm: float, t_m: float, t_f: float, t_p: float, t_s: float) -> float:
    """Eq. 7.4: the compression ratio k above which compressing saves time (inf: never).

    Throughputs in bytes/s: ``t_comm`` network, ``t_m`` precision conversion/quantization, ``t_f`` FFT,
    ``t_p`` packing, ``t_s`` top-k selection. Compressing pays when 2*cost_comp < saved communication.
    """
    for name, t in (("t_comm", t_comm), ("t_m", t_m), ("t_f", t_f), ("t_p", t_p), ("t_s", t_s)):
        if not t > 0:
            raise NasagentError(f"throughput {name} must be positive, got {t}")
    denom = 1.0 - 2.0 * t_comm * (2.0 / t_m + 1.0 / t_f + 1.0 / t_p + 1.0 / t_s)
    return math.inf if denom <= 0 else 1.0 / denom


def step_time_model(message_bytes: float, ratio: float, t_comm: float, t_m: float, t_f: float, t_p: float, t_s: float) -> dict:
    """Eq. 7.1-7.3 for one message: compression cost (sender + receiver), communication with and without."""
    comp = message_bytes * (2.0 / t_m + 1.0 / t_f + 1.0 / t_p + 1.0 / t_s)
    comm = message_bytes / t_comm
    return {"compress_s": 2 * comp, "comm_uncompressed_s": comm, "comm_compressed_s": comm / ratio,
            "saved_s": comm * (1 - 1 / ratio) - 2 * comp}
