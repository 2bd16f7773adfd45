"""gather=True on 2 gloo processes: unequal batches, a rank without positives, mixed target
dtypes, bad input on one rank, against one process on the concatenated batch."""
import datetime
import os
import socket
import tempfile
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

torch = pytest.importorskip("torch")
import rankref as rr  # noqa: E402
import rankref.torch as rt  # noqa: E402

C = 3
WORLD = 2


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(rank):
    """This rank's batch: unequal sizes; rank 1 holds no positive and other dtypes."""
    rng = np.random.default_rng(100 + rank)
    n = 50 + 17 * rank
    feats = rng.normal(size=(n, 4)).astype(np.float32)
    if rank == 0:
        t = np.where(rng.random((n, C)) < 0.1, rng.uniform(0.3, 1, (n, C)), 0.0)
        t[rng.random((n, C)) < 0.05] = -1
        labels = np.where(rng.random(n) < 0.4, rng.integers(0, C, n), C)
        rs_t, ap_t, y = (torch.tensor(t, dtype=torch.float32),
                         torch.tensor(np.sign(t), dtype=torch.float32),
                         torch.tensor(labels, dtype=torch.int64))
    else:
        t = np.zeros((n, C))
        labels = np.full(n, C)
        labels[:5] = -1
        rs_t, ap_t, y = (torch.zeros((n, C), dtype=torch.int8),
                         torch.zeros((n, C), dtype=torch.bool),
                         torch.tensor(labels, dtype=torch.int32))
    return feats, rs_t, ap_t, y


def _mmdet_data(rank):
    rng = np.random.default_rng(200 + rank)
    n = 40 + 25 * rank
    fg = rng.random(n) < 0.15
    labels = np.where(fg, rng.integers(0, C, n), C)
    scores = np.where(fg, rng.uniform(0, 1, n), 0.0)
    return (rng.normal(size=(n, 4)).astype(np.float32), torch.tensor(labels),
            torch.tensor(scores, dtype=torch.float32 if rank else torch.float64))


def _worker(rank, world, port, out_dir):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=600))
    out = {}
    feats, rs_t, ap_t, y = _data(rank)
    x = torch.tensor(feats)

    def run(name, loss_of):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, C)
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        loss = loss_of(ddp)
        loss.backward()
        out[name + "_loss"] = loss.item()
        out[name + "_w"] = model.weight.grad.numpy()
        out[name + "_b"] = model.bias.grad.numpy()

    run("rs", lambda m: sum(rt.RankSortLoss(gather=True)(m(x), rs_t)))
    run("rs_local", lambda m: sum(rt.RankSortLoss(gather=False)(m(x), rs_t)))
    run("ap", lambda m: rt.APLoss(gather=True)(m(x), ap_t))
    run("ap_local", lambda m: rt.APLoss(gather=False)(m(x), ap_t))
    gap = rt.GAPLoss(C, gather=True, sync_counts=True)
    run("gap", lambda m: gap(m(x), y))
    out["gap_counts"] = gap.counts.numpy()
    mf, my, mq = _mmdet_data(rank)
    run("mmdet", lambda m: rt.RankSortLoss(gather=True)(m(torch.tensor(mf)), (my, mq)))

    # bad input on rank 0 only: both ranks raise a ValueError, nobody hangs or aborts
    bad = rs_t.clone().float()
    if rank == 0:
        bad[0, 0] = 1.5
    try:
        rt.rank_sort_loss(x[:, :1].repeat(1, C), bad, gather=True)
        out["bad_error"] = ""
    except ValueError as exc:
        out["bad_error"] = str(exc)
    # different numbers of classes on the two ranks
    try:
        rt.gap_loss(torch.zeros(4, C + rank), torch.zeros(4, dtype=torch.int64),
                    None, weights=torch.ones(C + rank), gather=True)
        out["cols_error"] = ""
    except ValueError as exc:
        out["cols_error"] = str(exc)
    # a bad label on rank 0 in update_counts: both raise, no count changes anywhere
    before = gap.counts.clone()
    try:
        gap.update_counts(torch.tensor([C + 5 if rank == 0 else 0]))
        out["update_error"] = ""
    except ValueError as exc:
        out["update_error"] = str(exc)
    out["update_unchanged"] = bool(torch.equal(before, gap.counts))
    # the group still works afterwards
    run("again", lambda m: sum(rt.RankSortLoss(gather=True)(m(x), rs_t)))
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **out)
    dist.destroy_process_group()


def _run_workers(d):
    import torch.multiprocessing as mp
    ctx = mp.start_processes(_worker, args=(WORLD, _free_port(), d), nprocs=WORLD,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + 240
    while not ctx.join(timeout=5):  # raises if a worker died (a SIGABRT included)
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the gloo workers did not finish in 240 s")


@pytest.fixture(scope="module")
def results():
    from torch.multiprocessing import ProcessExitedException
    with tempfile.TemporaryDirectory() as d:
        try:
            _run_workers(d)
        except ProcessExitedException as exc:
            # on a heavily loaded machine a gloo worker has been seen to abort in gloo's own
            # threads ("terminate called without an active exception", no Python error):
            # run the workers once more before failing; a Python error is never retried
            if exc.signal_name is None:
                raise
            _run_workers(d)
        yield [dict(np.load(os.path.join(d, f"rank{k}.npz"))) for k in range(WORLD)]


def _one_process(loss_of):
    """Loss and gradients of one process on the concatenated batch, same initial weights."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, C)
    loss = loss_of(model)
    loss.backward()
    return loss.item(), model.weight.grad.numpy(), model.bias.grad.numpy()


def _concat(parts, dtype):
    return torch.cat([p.to(dtype) for p in parts])


def _assert_matches(res, name, ref):
    for k in range(WORLD):
        assert_allclose(res[k][name + "_loss"], ref[0], rtol=1e-6)
        assert_allclose(res[k][name + "_w"], ref[1], rtol=1e-4, atol=1e-6)
        assert_allclose(res[k][name + "_b"], ref[2], rtol=1e-4, atol=1e-6)


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_gathered_rank_sort_equals_one_process(results):
    data = [_data(k) for k in range(WORLD)]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    t = _concat([d[1] for d in data], torch.float32)
    ref = _one_process(lambda m: sum(rt.RankSortLoss()(m(x), t)))
    _assert_matches(results, "rs", ref)
    _assert_matches(results, "again", ref)
    # without gather every rank ranks its own batch: not the one-process gradient
    assert _rel(results[0]["rs_local_w"], ref[1]) > 0.05


def test_gathered_ap_equals_one_process(results):
    data = [_data(k) for k in range(WORLD)]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    t = _concat([d[2] for d in data], torch.float32)
    ref = _one_process(lambda m: rt.APLoss()(m(x), t))
    _assert_matches(results, "ap", ref)
    assert _rel(results[0]["ap_local_w"], ref[1]) > 0.05


def test_gathered_gap_and_synchronised_counts(results):
    data = [_data(k) for k in range(WORLD)]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    y = _concat([d[3] for d in data], torch.int64)
    expected = rr.ClassCounts(C).update(y.numpy()).counts
    ref = _one_process(lambda m: rt.GAPLoss(C)(m(x), y))
    _assert_matches(results, "gap", ref)
    for k in range(WORLD):
        assert_array_equal(results[k]["gap_counts"], expected)


def test_gathered_mmdet_call(results):
    data = [_mmdet_data(k) for k in range(WORLD)]
    x = torch.tensor(np.concatenate([d[0] for d in data]))
    y = torch.cat([d[1] for d in data])
    q = _concat([d[2] for d in data], torch.float64)
    ref = _one_process(lambda m: rt.RankSortLoss()(m(x), (y, q)))
    _assert_matches(results, "mmdet", ref)


def test_bad_input_on_one_rank_raises_on_every_rank(results):
    assert "flat entry 0 is 1.5" in str(results[0]["bad_error"])
    assert "rank(s) [0]" in str(results[1]["bad_error"])
    for k in range(WORLD):
        assert "same number of columns" in str(results[k]["cols_error"])
        assert bool(results[k]["update_unchanged"])
    assert "entry 0 is 8" in str(results[0]["update_error"])
    assert "rank(s) [0]" in str(results[1]["update_error"])


def test_gather_without_process_group_ranks_locally_without_a_warning():
    # one process: its batch is the whole batch, there is nothing to gather and nothing to say
    x, t = torch.randn(30), (torch.rand(30) < 0.2).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r, s = rt.RankSortLoss(gather=True)(x, t)
        r2, s2 = rt.RankSortLoss(gather=True)(x, t)
        rt.APLoss(gather=True)(x, t)
        rt.GAPLoss(2, gather=True)(torch.randn(5, 2), torch.tensor([0, 1, 2, 2, 0]))
    local = rt.RankSortLoss()(x, t)
    assert (r.item(), s.item()) == (r2.item(), s2.item()) == (local[0].item(), local[1].item())
