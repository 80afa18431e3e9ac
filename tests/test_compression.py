"""Gradient codecs (thesis Ch. 7), the DDP communication hook on 2 gloo processes, and the byte counter."""

import copy
import math
import os
import warnings

import pytest
import torch

from nasagent.core import NasagentError
from nasagent.systems.compression import (FFTCodec, NoCompression, QSGDCodec, RangeQuantizer, TernGradCodec, ThetaSchedule,
                                          TopKCodec, bitmap_pack, bitmap_unpack, make_codec, min_useful_ratio, pack_bits,
                                          pack_bool, relative_error, theta_for_bytes, unpack_bits, unpack_bool)


def test_bit_packing_round_trips():
    g = torch.Generator().manual_seed(0)
    for width, count in ((1, 13), (3, 100), (10, 257), (16, 9)):
        v = torch.randint(0, 2**width, (count,), generator=g)
        packed = pack_bits(v, width)
        assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(width * count / 8)
        assert torch.equal(unpack_bits(packed, width, count), v)
    mask = torch.rand(77, generator=g) < 0.3
    assert torch.equal(unpack_bool(pack_bool(mask), 77), mask)


def test_prefix_sum_packing_matches_the_thesis_example():
    sparse = torch.tensor([1.5, 0.0, -2.0, 0.0, 3.0, 0.0, 0.0])
    status = sparse != 0
    assert torch.cumsum(status.long(), 0).tolist() == [1, 1, 2, 2, 3, 3, 3]
    dense = bitmap_pack(sparse, status)
    assert dense.tolist() == [1.5, -2.0, 3.0]
    assert torch.equal(bitmap_unpack(dense, status), sparse)


def test_range_quantizer_balances_codes_and_orders_values():
    q = RangeQuantizer(bits=10, mantissa=6)
    pos, neg = q._counts(6, q.pbase)
    assert abs(pos - 512) <= 2 and abs(neg - 511) <= 2  # P close to 2**N / 2 after the eps search
    assert float(q.decode(torch.tensor([2**10 - 1]))) <= -1.0 + 1e-6  # the all-ones code reaches min
    x = torch.linspace(-1, 1, 2001)
    codes = q.encode(x)
    assert int(codes.min()) >= 0 and int(codes.max()) < 2**10
    dec = q.decode(codes)
    assert torch.all(dec[1:] >= dec[:-1])  # monotone
    assert float((dec - x).abs().max()) < 0.01
    assert float(q.decode(q.encode(torch.tensor([0.0])))) == 0.0


def test_truncation_is_the_seeds_shift_and_nearest_is_more_accurate():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(5000, generator=g) * 2 - 1) * 0.9
    trunc = RangeQuantizer(10, 6, rounding="truncate")
    near = RangeQuantizer(10, 6, rounding="nearest")
    t = trunc.decode(trunc.encode(x))
    assert torch.all(t.abs() <= x.abs() + 1e-7)  # the plain shift never rounds a magnitude up
    assert relative_error(x, near.decode(near.encode(x))) < relative_error(x, t)


def test_calibration_picks_the_mantissa_with_least_error():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4000, generator=g).clamp(-3, 3) / 3
    q = RangeQuantizer(10).calibrate(x)
    best = relative_error(x, q.decode(q.encode(x)))
    for m in range(0, 11):
        other = RangeQuantizer(10, m)
        assert best <= relative_error(x, other.decode(other.encode(x))) + 1e-9


@pytest.mark.parametrize("n", [1, 7, 1000, 19141, 38282])
def test_payload_length_is_fixed_and_exact(n):
    g = torch.randn(n, generator=torch.Generator().manual_seed(n)) * 1e-2
    for codec in (NoCompression(), FFTCodec(0.85), FFTCodec(0.5, bits=None), FFTCodec(0.85, real_fft=False), TopKCodec(0.9),
                  TopKCodec(0.9, bits=10), TopKCodec(0.9, index="int32"), QSGDCodec(7), TernGradCodec(),
                  TernGradCodec(exempt_tail=5)):
        payload = codec.encode(g)
        assert payload.dtype == torch.uint8
        assert payload.numel() == codec.payload_bytes(n), codec.name
        assert codec.encode(torch.zeros(n)).numel() == payload.numel()
        out = codec.decode(payload, n)
        assert out.shape == (n,) and torch.isfinite(out).all()


def test_lossless_settings_reconstruct_and_theta_keeps_the_largest():
    g = torch.randn(5000, generator=torch.Generator().manual_seed(3))
    exact = FFTCodec(0.0, bits=None, fp16=False)
    assert relative_error(g, exact.decode(exact.encode(g), 5000)) < 1e-5
    topk = TopKCodec(0.9)
    out = topk.decode(topk.encode(g), 5000)
    kept = out != 0
    assert int(kept.sum()) == 500
    assert float(g[~kept].abs().max()) <= float(g[kept].abs().min())
    assert torch.equal(out[kept], g[kept])


def test_fft_wins_on_smooth_signals_and_topk_on_spikes():
    t = torch.linspace(0, 1, 4096)
    smooth = torch.sin(2 * math.pi * 3 * t) + 0.5 * torch.cos(2 * math.pi * 7 * t)
    spikes = torch.zeros(4096)
    spikes[torch.randperm(4096, generator=torch.Generator().manual_seed(4))[:100]] = 1.0
    fft, topk = FFTCodec(0.95, bits=None, fp16=False), TopKCodec(0.95)
    err = lambda c, x: relative_error(x, c.decode(c.encode(x), x.numel()))  # noqa: E731
    assert err(fft, smooth) < 0.01 < err(topk, smooth)
    assert err(topk, spikes) < 1e-6 < err(fft, spikes)


def test_thesis_setting_sends_over_ten_times_fewer_bytes():
    n = 38282
    assert FFTCodec(0.85).ratio(n) > 10
    assert FFTCodec(0.85, bits=None).ratio(n) < FFTCodec(0.85).ratio(n)  # quantization pays on top of sparsification


def test_theta_for_bytes_matches_a_budget():
    n = 10000
    budget = FFTCodec(0.85).payload_bytes(n)
    theta = theta_for_bytes(lambda t: TopKCodec(t), n, budget)
    assert TopKCodec(theta).payload_bytes(n) <= budget
    assert TopKCodec(max(theta - 0.002, 0)).payload_bytes(n) > budget
    with pytest.raises(NasagentError, match="fixed part"):
        theta_for_bytes(lambda t: TopKCodec(t), n, 100)


def test_qsgd_is_unbiased_and_terngrad_ternary():
    g = torch.randn(200, generator=torch.Generator().manual_seed(5))
    q = QSGDCodec(4, seed=0)
    mean = torch.stack([q.decode(q.encode(g), 200) for _ in range(400)]).mean(0)
    assert relative_error(g, mean) < 0.25
    t = TernGradCodec(seed=0)
    out = t.decode(t.encode(g), 200)
    assert set(torch.unique(out / g.abs().max()).round().tolist()) <= {-1.0, 0.0, 1.0}


def test_terngrad_sends_the_exempt_last_layer_exactly_and_scales_the_rest_by_itself():
    g = torch.randn(300, generator=torch.Generator().manual_seed(6)) * 1e-3
    g[-20:] *= 1000.0  # a last layer with much larger gradients, as a classifier often has
    t = TernGradCodec(seed=0, exempt_tail=20)
    out = t.decode(t.encode(g), 300)
    assert torch.equal(out[-20:], g[-20:])  # float32 on the wire: exact
    head_scale = g[:-20].abs().max()
    assert set(torch.unique(out[:-20] / head_scale).round().tolist()) <= {-1.0, 0.0, 1.0}
    assert t.payload_bytes(300) == 4 + 280 // 4 + 4 * 20
    # both are unbiased, but with the big last layer setting its scale plain TernGrad almost never fires on the
    # rest: averaged over 200 draws it is far noisier there than the exempting codec
    plain = TernGradCodec(seed=0)
    mean_exempt = torch.stack([t.decode(t.encode(g), 300)[:-20] for _ in range(200)]).mean(0)
    mean_plain = torch.stack([plain.decode(plain.encode(g), 300)[:-20] for _ in range(200)]).mean(0)
    assert relative_error(g[:-20], mean_exempt) < 0.3 < relative_error(g[:-20], mean_plain)
    with pytest.raises(NasagentError, match="exempt_tail"):
        TernGradCodec(exempt_tail=-1)


def test_error_cdf_and_histogram_describe_the_codec_error():
    from nasagent.systems.compression import error_cdf, gradient_histogram

    g = torch.randn(4000, generator=torch.Generator().manual_seed(8))
    err, frac = error_cdf(g, g)
    assert max(err) == 0.0 and frac[0] == 0.0 and frac[-1] == 1.0
    topk = TopKCodec(0.9)
    err, _ = error_cdf(g, topk.decode(topk.encode(g), 4000))
    assert err == sorted(err) and 0 < err[-1] <= 1.0  # dropped values err by at most the largest magnitude
    edges, counts = gradient_histogram(g, bins=20)
    assert len(edges) == 21 and sum(counts) == 4000 and counts[9] + counts[10] > counts[0] + counts[-1]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(NasagentError, match="theta"):
        FFTCodec(1.0)
    with pytest.raises(NasagentError, match="unknown gradient codec"):
        make_codec("zip")
    with pytest.raises(NasagentError, match="bad options"):
        make_codec("fft", nonsense=1)
    with pytest.raises(NasagentError, match="bits"):
        RangeQuantizer(bits=40)
    with pytest.raises(NasagentError, match="truncated"):
        FFTCodec(0.85).decode(torch.zeros(3, dtype=torch.uint8), 1000)
    with pytest.raises(NasagentError, match="positive"):
        min_useful_ratio(0, 1, 1, 1, 1)


def test_theta_schedules_and_break_even_ratio():
    assert ThetaSchedule("step", 0.9, at_step=10)(9) == 0.9 and ThetaSchedule("step", 0.9, at_step=10)(10) == 0.0
    s = ThetaSchedule("sqrt-lr", 0.9, lipschitz=4.0)
    assert s(0, lr=0.01) == pytest.approx(0.2) and s(0, lr=1.0) == 0.9
    with pytest.raises(NasagentError):
        s(0)
    assert min_useful_ratio(1.0, 1e9, 1e9, 1e9, 1e9) == pytest.approx(1 / (1 - 2 * 5e-9))
    assert min_useful_ratio(1e9, 1e9, 1e9, 1e9, 1e9) == math.inf  # compression slower than the link


# -- DDP on two gloo processes ----------------------------------------------------------------------------
def _ddp_worker(rank, port, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nasagent.systems.comm_hook import WireCounter, count_collectives, register_compression

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        n = sum(p.numel() for p in net.parameters())
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(10 + rank))
        y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(20 + rank))
        torch.nn.functional.cross_entropy(net(x), y).backward()
        mine = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).clone()
        results = {}
        for name, codec in (("lossless", FFTCodec(0.0, bits=None, fp16=False)), ("lossy", FFTCodec(0.5))):
            copy_ = copy.deepcopy(net)
            ddp = DistributedDataParallel(copy_, bucket_cap_mb=1)
            register_compression(ddp, codec)
            counter = WireCounter()
            with count_collectives(counter):
                ddp.zero_grad()
                torch.nn.functional.cross_entropy(ddp(x), y).backward()
            grad = torch.cat([p.grad.reshape(-1) for p in copy_.parameters()]).clone()
            results[name] = {"grad": grad, "bytes": counter.bytes, "payload": codec.payload_bytes(n)}
        # reference: average of both workers' exact gradients, and of their decoded payloads
        gathered = [torch.empty_like(mine) for _ in range(2)]
        dist.all_gather(gathered, mine)
        results["exact_mean"] = sum(gathered) / 2
        codec = FFTCodec(0.5)
        results["lossy_reference"] = sum(codec.decode(codec.encode(g), n) for g in gathered) / 2
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_hook_on_two_gloo_workers(tmp_path):
    import torch.multiprocessing as mp

    from nasagent.systems.data_parallel import free_port

    mp.spawn(_ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for r in (r0, r1):
        assert torch.allclose(r["lossless"]["grad"], r["exact_mean"], atol=1e-6)  # the hook averages correctly
        assert torch.allclose(r["lossy"]["grad"], r["lossy_reference"], atol=1e-6)
        for name in ("lossless", "lossy"):  # every byte sent is the payload, sent once by all_gather
            assert r[name]["bytes"] == {"all_gather": r[name]["payload"]}
    assert torch.equal(r0["lossy"]["grad"], r1["lossy"]["grad"])  # workers stay bitwise identical


def test_train_data_parallel_counts_bytes_and_keeps_workers_identical():
    import functools

    import numpy as np

    from nasagent.evaluation.datasets import Dataset
    from nasagent.systems.data_parallel import DPConfig, train_data_parallel

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 4, 4)).astype(np.float32)
    y = (x.reshape(64, -1).sum(1) > 0).astype(np.int64)
    data = Dataset("toy", x, y, x[:16], y[:16], x[:16], y[:16], 2)
    build = functools.partial(torch.nn.Sequential, torch.nn.Flatten(), torch.nn.Linear(16, 2))
    res = train_data_parallel(build, data, DPConfig(method="topk", codec_options={"theta": 0.5}, steps=6, batch_size=8, eval_every=3))
    assert res["params_identical"] and res["steps"] == 6
    assert res["bytes_per_step"] == TopKCodec(0.5).payload_bytes(34)
    assert len(res["curve"]) == 2 and 0 <= res["test_acc"] <= 1
    with pytest.raises(NasagentError, match="unknown gradient exchange"):
        DPConfig(method="zip")


def test_group_of_one_passes_gradients_through():
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nasagent.systems.comm_hook import register_compression
    from nasagent.systems.data_parallel import free_port

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2)
        ref = torch.nn.Linear(4, 2)
        ref.load_state_dict(net.state_dict())
        ddp = DistributedDataParallel(net)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            register_compression(ddp, FFTCodec(0.9))
        assert any("process group of one" in str(x.message) for x in w)
        x = torch.randn(3, 4)
        ddp(x).sum().backward()
        ref(x).sum().backward()
        assert torch.allclose(net.weight.grad, ref.weight.grad)
        with pytest.raises(NasagentError, match="DistributedDataParallel"):
            register_compression(net, FFTCodec(0.9))
    finally:
        dist.destroy_process_group()


def test_error_feedback_follows_parameters_when_ddp_reorders_a_bucket():
    import torch.distributed as dist

    from nasagent.systems.comm_hook import CompressionState, compression_hook
    from nasagent.systems.data_parallel import free_port

    if dist.is_initialized():
        pytest.skip("a process group already exists in this process")

    class Bucket:  # what DDP hands the hook: after its first step it may lay the same parameters out anew
        def __init__(self, params):
            self.params = params
            self.flat = torch.cat([p.grad.reshape(-1) for p in params])

        def buffer(self):
            return self.flat

        def parameters(self):
            return self.params

        def index(self):
            return 0

        def is_last(self):
            return True

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        a, b = torch.nn.Parameter(torch.zeros(30)), torch.nn.Parameter(torch.zeros(30))
        state = CompressionState(TopKCodec(theta=0.9), None, error_feedback=True, simulate_single=True)
        gen = torch.Generator().manual_seed(0)
        total = {id(a): torch.zeros(30), id(b): torch.zeros(30)}
        sent = {id(a): torch.zeros(30), id(b): torch.zeros(30)}
        for step in range(4):
            a.grad, b.grad = torch.randn(30, generator=gen), torch.randn(30, generator=gen)
            order = [a, b] if step == 0 else [b, a]  # the layout changes after the first step, as DDP's does
            out = compression_hook(state, Bucket(order)).wait()
            for p, part in zip(order, torch.split(out, 30)):
                total[id(p)] += p.grad
                sent[id(p)] += part
        for p in (a, b):  # error feedback's promise, per parameter: what was sent plus what is left = every gradient
            assert torch.allclose(sent[id(p)] + state.residuals[id(p)], total[id(p)], atol=1e-5)
    finally:
        dist.destroy_process_group()
