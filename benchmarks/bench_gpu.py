"""Benchmark of rankref_gpu.rank_sort_loss on torch tensors and CuPy arrays.

Usage:
    python benchmarks/bench_gpu.py             # CUDA: torch tensors, and CuPy arrays if installed
    python benchmarks/bench_gpu.py --cpu       # this machine: NumPy arrays and torch CPU tensors
    python benchmarks/bench_gpu.py --memory    # peak extra bytes per logit (CPU; CUDA if present)

Columns, in seconds (median of ``--repeat`` timed runs after a warm-up; CUDA events on a GPU,
``perf_counter`` on the CPU), float32 logits, delta = 0.5:

* ``fwd+bwd``: ``rank_sort_loss(method="bucketed")``, loss values and the three gradients;
* ``values``: the same with ``compute_grad=False`` (no_grad / evaluation);
* ``brs``: ``method="brs"``, values and gradients;
* ``sort``: ``torch.sort`` of the same N logits on the same device (``np.sort`` for NumPy);
* ``rankref``: the CPU path, :func:`rankref.rank_sort_loss` on a host copy;
* ``official``: the official-style loop (one O(N) pass per positive, ``if FP > eps`` read on
  the host each time) on the same device, when ``N * P <= --official-max``.

Ratios: ``fwd+bwd / sort``, ``official / fwd+bwd`` and ``rankref / fwd+bwd``, all measured in
the same run.  ``--memory`` runs each case in a fresh process and reports the peak extra memory
of one call over the inputs (RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA) at two
sizes, with the slope in bytes per logit and the constant part.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np


def official_loop(xp, logits, targets, delta=0.5, eps=1e-10):
    """The official RankSort forward and backward (one pass per positive) on any namespace."""
    fg = targets > 0
    fg_logits, fg_targets = logits[fg], targets[fg]
    threshold = fg_logits.min() - delta
    rel = (targets == 0) & (logits >= threshold)
    bg_logits = logits[rel]
    bg_grad = xp.zeros(bg_logits.shape[0], dtype=logits.dtype)
    fg_grad = xp.zeros(fg_logits.shape[0], dtype=logits.dtype)
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


class Target:
    """An array library on a device: conversion, a timer and the sort baseline."""

    def __init__(self, name, repeat):
        self.name, self.repeat = name, repeat
        if name.startswith("torch"):
            import torch

            self.torch = torch
            self.device = torch.device("cuda" if name == "torch-cuda" else "cpu")
        elif name == "cupy":
            import cupy

            self.cupy = cupy

    def convert(self, a):
        if self.name == "numpy":
            return a
        if self.name == "cupy":
            return self.cupy.asarray(a)
        return self.torch.from_numpy(a).to(self.device)

    def sort(self, x):
        if self.name == "numpy":
            return np.sort(x)
        if self.name == "cupy":
            return self.cupy.sort(x)
        return self.torch.sort(x)

    def sync(self):
        if self.name == "torch-cuda":
            self.torch.cuda.synchronize()
        elif self.name == "cupy":
            self.cupy.cuda.Device().synchronize()

    def timed(self, fn):
        fn()  # warm-up (kernel compilation, caching allocators)
        self.sync()
        ts = []
        for _ in range(self.repeat):
            if self.name == "torch-cuda":
                start, stop = (self.torch.cuda.Event(enable_timing=True),
                               self.torch.cuda.Event(enable_timing=True))
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                ts.append(start.elapsed_time(stop) / 1e3)
            elif self.name == "cupy":
                start, stop = self.cupy.cuda.Event(), self.cupy.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                ts.append(self.cupy.cuda.get_elapsed_time(start, stop) / 1e3)
            else:
                s = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - s)
        return float(np.median(ts))

    def device_name(self):
        if self.name == "torch-cuda":
            return self.torch.cuda.get_device_name()
        if self.name == "cupy":
            return self.cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        return "CPU"


def problem(n, p, seed=0):
    """N float32 logits (negatives around -4.6, positives 0.2 higher) with P IoU targets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n, dtype=np.float32) * np.float32(0.3) - np.float32(4.6)
    t = np.zeros(n, dtype=np.float32)
    idx = rng.choice(n, p, replace=False)
    t[idx] = rng.uniform(0.5, 1.0, p).astype(np.float32)
    x[idx] += np.float32(0.2)
    return x, t


def run_times(args, targets):
    import rankref
    import rankref_gpu as rg
    from rankref_gpu._backend import namespace

    head = (f"{'backend':<11}{'N':>7}{'P':>7}{'fwd+bwd':>10}{'values':>10}{'brs':>10}"
            f"{'sort':>10}{'rankref':>10}{'official':>10}{'fb/sort':>9}{'off/fb':>9}"
            f"{'rr/fb':>8}")
    print(head)
    print("-" * len(head))
    for n in (int(s) for s in args.sizes):
        for p in (int(v) for v in args.positives):
            if p >= n:
                continue
            x_host, t_host = problem(n, p)
            rr_time = None
            if not args.no_rankref:
                s = time.perf_counter()
                for _ in range(max(1, args.repeat // 2)):
                    rankref.rank_sort_loss(x_host, t_host, 0.5)
                rr_time = (time.perf_counter() - s) / max(1, args.repeat // 2)
            for tg in targets:
                x, t = tg.convert(x_host), tg.convert(t_host)
                fb = tg.timed(lambda: rg.rank_sort_loss(x, t, 0.5, "bucketed"))
                vo = tg.timed(lambda: rg.rank_sort_loss(x, t, 0.5, "bucketed",
                                                        compute_grad=False))
                brs = tg.timed(lambda: rg.rank_sort_loss(x, t, 0.5, "brs"))
                srt = tg.timed(lambda: tg.sort(x))
                off = None
                if n * p <= args.official_max:
                    xp = namespace(x)
                    s = time.perf_counter()
                    official_loop(xp, x, t)
                    tg.sync()
                    off = time.perf_counter() - s

                def cell(v, w=10, fmt=".4f"):
                    return f"{v:{w}{fmt}}" if v is not None else f"{'-':>{w}}"

                ratio = (lambda a: f"{a / fb:8.0f}x" if a is not None else f"{'-':>9}")
                print(f"{tg.name:<11}{n:>7.0e}{p:>7}{cell(fb)}{cell(vo)}{cell(brs)}{cell(srt)}"
                      f"{cell(rr_time)}{cell(off, fmt='.3f')}{fb / srt:8.2f}x{ratio(off)}"
                      f"{(rr_time / fb if rr_time else float('nan')):7.1f}x", flush=True)


_MEMORY_CHILD = r"""
import os, resource, sys
import numpy as np
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from bench_gpu import problem
import rankref_gpu as rg
lib, n, p, mode = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
x, t = problem(n, p)
kw = {} if mode == "fwd+bwd" else {"compute_grad": False}
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
if lib.startswith("torch"):
    import torch
    dev = "cuda" if lib == "torch-cuda" else "cpu"
    x, t = torch.from_numpy(x).to(dev), torch.from_numpy(t).to(dev)
rg.rank_sort_loss(x[:5000], t[:5000], 0.5, **kw)  # warm-up: libraries, kernels
if lib == "torch-cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    res = rg.rank_sort_loss(x, t, 0.5, **kw); torch.cuda.synchronize()
    print(torch.cuda.max_memory_allocated() - base)
else:
    base = rss()
    res = rg.rank_sort_loss(x, t, 0.5, **kw)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)
"""


def run_memory(args, libs):
    sizes = [int(s) for s in (args.sizes or [1.6e7, 4.8e7])]
    p = int(args.positives[0]) if args.positives else 1000
    print(f"peak extra memory of one rank_sort_loss call over its inputs (float32 logits, "
          f"P = {p}); slope = bytes per logit, constant = the rest")
    head = f"{'backend':<11}{'mode':<9}" + "".join(f"{f'N={n:.1e}':>16}" for n in sizes) + \
        f"{'slope B/logit':>15}{'constant MB':>13}"
    print(head)
    print("-" * len(head))
    here = os.path.abspath(__file__)
    for lib in libs:
        for mode in ("fwd+bwd", "values"):
            peaks = []
            for n in sizes:
                # large blocks straight from mmap: RSS then follows the live bytes (glibc's
                # dynamic threshold would keep freed slices in the heap and inflate the peak)
                env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
                out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, here, lib, str(n),
                                      str(p), mode], capture_output=True, text=True, env=env)
                if out.returncode:
                    raise SystemExit(out.stderr)
                peaks.append(int(out.stdout.split()[-1]))
            slope = (peaks[-1] - peaks[0]) / (sizes[-1] - sizes[0])
            const = (peaks[0] - slope * sizes[0]) / 2**20
            cells = "".join(f"{v / n:12.1f} B/l" for v, n in zip(peaks, sizes))
            print(f"{lib:<11}{mode:<9}{cells}{slope:15.1f}{const:13.0f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true",
                        help="NumPy arrays and torch CPU tensors on this machine")
    parser.add_argument("--memory", action="store_true", help="peak extra bytes per logit")
    parser.add_argument("--sizes", type=float, nargs="*")
    parser.add_argument("--positives", type=float, nargs="*")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--official-max", type=float, default=None,
                        help="run the official loop when N * P is at most this")
    parser.add_argument("--no-rankref", action="store_true", help="skip the CPU reference")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        torch = None
    cuda = torch is not None and torch.cuda.is_available() and not args.cpu
    try:
        import cupy

        cupy.zeros(1)
        has_cupy = not args.cpu
    except Exception:
        has_cupy = False
    if args.memory:
        libs = ["numpy"] + (["torch-cpu"] if torch is not None else [])
        libs += ["torch-cuda"] if cuda else []
        return run_memory(args, libs)
    if args.cpu or not (cuda or has_cupy):
        if not args.cpu:
            print("no CUDA device (torch) and no CuPy: running the CPU mode (--cpu)")
        names = ["numpy"] + (["torch-cpu"] if torch is not None else [])
        args.sizes = args.sizes or [1e5, 1e6]
        args.positives = args.positives or [1e2, 1e3]
        args.repeat = args.repeat or 5
        args.official_max = args.official_max or 1e8
    else:
        names = (["torch-cuda"] if cuda else []) + (["cupy"] if has_cupy else [])
        args.sizes = args.sizes or [1e6, 1e7, 1e8]
        args.positives = args.positives or [1e2, 1e3, 1e4]
        args.repeat = args.repeat or 10
        args.official_max = args.official_max or 1e9
    targets = [Target(name, args.repeat) for name in names]
    threads = torch.get_num_threads() if torch is not None else "-"
    print(f"rankref_gpu.rank_sort_loss on {', '.join(t.name for t in targets)} "
          f"({targets[0].device_name()}); float32 logits, delta = 0.5, median of "
          f"{args.repeat} runs; torch threads: {threads}; seconds")
    run_times(args, targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
