"""GPU benchmark of rankref_gpu.rank_sort_loss against torch.sort and the official loop.

Usage:
    python benchmarks/bench_gpu.py            # CuPy + CUDA: N in {1e6, 1e7, 1e8}, P in {1e2, 1e3, 1e4}
    python benchmarks/bench_gpu.py --cpu      # the same code path on NumPy arrays (smaller N)

Columns: rank_sort_loss(method="bucketed") and method="brs" (values and gradients together),
the sort of the same N float32 logits (torch.sort on the GPU, np.sort with --cpu), and a
re-implementation of the official per-positive loop (N <= 1e6 only).  GPU timings use CUDA
events after a warm-up, median of 10 runs; CPU timings perf_counter, median of 5.
"""
import argparse
import sys
import time

import numpy as np


def official_loop(xp, logits, targets, delta=0.5, eps=1e-10):
    """The official RankSort loop (one pass per positive), on any array module."""
    fg = targets > 0
    fg_logits, fg_targets = logits[fg], targets[fg]
    threshold = fg_logits.min() - delta
    rel = (targets == 0) & (logits >= threshold)
    bg_logits = logits[rel]
    bg_grad = xp.zeros_like(bg_logits)
    fg_grad = xp.zeros_like(fg_logits)
    n = fg_logits.shape[0]
    ranking = xp.zeros(n, dtype=logits.dtype)
    sorting = xp.zeros(n, dtype=logits.dtype)
    for ii in range(n):
        fr = xp.clip((fg_logits - fg_logits[ii]) / (2 * delta) + 0.5, 0, 1)
        br = xp.clip((bg_logits - fg_logits[ii]) / (2 * delta) + 0.5, 0, 1)
        rank_pos = fr.sum()
        fp = br.sum()
        ranking[ii] = fp / (rank_pos + fp)
        cur = (fr * (1 - fg_targets)).sum() / rank_pos
        ge = fg_targets >= fg_targets[ii]
        order = ge * fr
        sorting[ii] = cur - (order * (1 - fg_targets)).sum() / order.sum()
        if fp > eps:
            fg_grad[ii] -= ranking[ii]
            bg_grad += br * (ranking[ii] / fp)
        mis = (~ge) * fr
        den = mis.sum()
        if den > eps:
            fg_grad[ii] -= sorting[ii]
            fg_grad += mis * (sorting[ii] / den)
    return ranking.mean(), sorting.mean(), fg_grad, bg_grad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="NumPy arrays on the CPU")
    parser.add_argument("--sizes", type=float, nargs="*")
    parser.add_argument("--positives", type=float, nargs="*", default=[1e2, 1e3, 1e4])
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)

    import rankref_gpu as rg

    if args.cpu:
        xp = np
        sizes = [int(s) for s in (args.sizes or [1e5, 1e6])]
        repeat = args.repeat or 5

        def timed(fn):
            fn()
            ts = []
            for _ in range(repeat):
                s = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - s)
            return float(np.median(ts))

        def sort_of(x):
            return np.sort(x)
        device = "CPU (NumPy arrays)"
    else:
        import cupy as xp
        import torch

        sizes = [int(s) for s in (args.sizes or [1e6, 1e7, 1e8])]
        repeat = args.repeat or 10

        def timed(fn):
            fn()
            torch.cuda.synchronize()
            xp.cuda.Device().synchronize()
            ts = []
            for _ in range(repeat):
                start, stop = xp.cuda.Event(), xp.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                ts.append(xp.cuda.get_elapsed_time(start, stop) / 1e3)
            return float(np.median(ts))

        def sort_of(x):
            return torch.sort(torch.from_dlpack(x))
        device = torch.cuda.get_device_name()

    print(f"rankref_gpu on {device}; float32 logits, delta=0.5, {repeat} timed runs (median)")
    head = (f"{'N':>8}{'P':>7}{'bucketed s':>12}{'brs s':>10}{'sort s':>10}{'official s':>12}"
            f"{'bkt/sort':>10}{'official/bkt':>14}")
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(0)
    for n in sizes:
        x_host = rng.normal(-4.6, 0.3, n).astype(np.float32)
        for p in (int(v) for v in args.positives):
            if p >= n:
                continue
            t_host = np.zeros(n, dtype=np.float32)
            idx = rng.choice(n, p, replace=False)
            t_host[idx] = rng.uniform(0.5, 1.0, p).astype(np.float32)
            x_host[idx] += 0.2
            x, t = xp.asarray(x_host), xp.asarray(t_host)
            bkt = timed(lambda: rg.rank_sort_loss(x, t, 0.5, "bucketed"))
            brs = timed(lambda: rg.rank_sort_loss(x, t, 0.5, "brs"))
            srt = timed(lambda: sort_of(x))
            if n <= 10**6 and p <= 10**3:
                s = time.perf_counter()
                official_loop(xp, x, t)
                if xp is not np:
                    xp.cuda.Device().synchronize()
                off = time.perf_counter() - s
                off_txt, ratio_txt = f"{off:12.3f}", f"{off / bkt:13.0f}x"
            else:
                off_txt, ratio_txt = f"{'-':>12}", f"{'-':>14}"
            print(f"{n:>8.0e}{p:>7}{bkt:12.4f}{brs:10.4f}{srt:10.4f}{off_txt}"
                  f"{bkt / srt:9.2f}x{ratio_txt}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
