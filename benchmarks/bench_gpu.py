"""Benchmark of rankref_gpu.rank_sort_loss on torch tensors and CuPy arrays.

Usage:
    python benchmarks/bench_gpu.py             # CUDA: torch tensors, and CuPy arrays if installed
    python benchmarks/bench_gpu.py --cpu       # this machine: NumPy arrays and torch CPU tensors
    python benchmarks/bench_gpu.py --memory    # peak extra bytes per logit (CPU; CUDA if present)
    python benchmarks/bench_gpu.py --pairs     # P sweep at N = 1e6: the pair terms on their own
    python benchmarks/bench_gpu.py --crossover # dense pair terms against the segment tree by P
    python benchmarks/bench_gpu.py --census    # op census on the CPU and a roofline GPU estimate

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
the same run.

``--pairs`` (P = 1e2 .. 1e5 at N = 1e6 by default, as rankref's ``bench_ranking.py --pairs``):
``fwd+bwd`` of the whole call, ``pairs`` the positive-positive work of one RS call alone (the
sorting terms and the sorting scatter, with the dense/tree switch as shipped: ``path`` says
which), ``tree`` and ``dense`` the same forced either way (dense only up to ``--dense-max``),
``sort`` the N logits, and the ratios ``pairs / sort`` and ``fwd+bwd / sort``.  ``--crossover``
times the dense chunks against the tree at small P and reports the largest P where the dense
chunks are faster (``rankref_gpu._pairs.DENSE_MAX_P_CPU`` / ``DENSE_MAX_P_GPU``).  ``--memory`` runs each case in a fresh process and reports the peak extra memory
of one call over the inputs (RSS on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA) at two
sizes, with the slope in bytes per logit and the constant part.

``--census`` needs no GPU: it counts, with :class:`rankref_gpu._census.Census` (a
``TorchDispatchMode``), the aten operators of one call of ``rank_sort_loss`` (RS), ``ap_loss``
(AP) and ``gap_loss`` (GAP) on torch CPU tensors (float32 logits, delta 0.5, P = 1e3 positives
among the negatives; GAP: C = 16 classes, 1e3 foreground rows), running the code paths a CUDA
device takes (``--paths cpu`` for the torch CPU ones), at two sizes (``--sizes``, default 2**20
and 2**23).  Columns: ``ops`` every aten operator, views included (the issue-24 count), ``kern``
the operators that run a kernel (views excluded), ``ops>=N/4`` those touching a tensor of at
least N/4 elements, ``B/logit`` their input and output bytes per logit, ``syncs`` the host syncs
(named below the table), and the roofline time ``bytes / bandwidth + kern * launch + syncs *
sync`` on an H100 SXM and an H200 (``docs/gpu_cost.rst`` gives the numbers and their sources),
at N and, extrapolated linearly from the two sizes, at N = 1e8.
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


class _PairPath:
    """Force the pair terms onto the dense chunks ("dense") or the segment tree ("tree")."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        from rankref_gpu import _pairs

        self.keep = _pairs.DENSE_MAX_P_CPU, _pairs.DENSE_MAX_P_GPU
        limit = {"dense": 10**12, "tree": -1}.get(self.path)
        if limit is not None:
            _pairs.DENSE_MAX_P_CPU = _pairs.DENSE_MAX_P_GPU = limit
        return self

    def __exit__(self, *exc):
        from rankref_gpu import _pairs

        _pairs.DENSE_MAX_P_CPU, _pairs.DENSE_MAX_P_GPU = self.keep
        return False


def pair_terms(tg, x_host, t_host, delta=0.5):
    """The positive-positive work of one RS call (terms and sorting scatter) on target ``tg``,
    as a function to time, and the path the shipped switch takes."""
    from rankref_gpu import _pairs
    from rankref_gpu._backend import namespace

    pos = np.flatnonzero(t_host > 0)
    pos = pos[np.argsort(x_host[pos], kind="stable")]
    xq = tg.convert(x_host[pos].astype(np.float64))
    tp = tg.convert(t_host[pos].astype(np.float64))
    w = tg.convert(np.full(pos.size, 1.0 / max(pos.size, 1)))
    xp = namespace(xq)

    def run():
        groups = None if _pairs.use_dense(xp, pos.size) else _pairs.Groups.of(xp, tp)
        _pairs.rs_terms(xp, xq, tp, delta, groups)
        _pairs.rs_sorting_scatter(xp, xq, tp, w, delta, groups)
    return run, "dense" if _pairs.use_dense(xp, pos.size) else "tree"


def run_pairs(args, targets):
    import rankref_gpu as rg

    n = int(args.sizes[0]) if args.sizes else 10**6
    print(f"P sweep at N = {n:.0e}: the pair terms (sorting terms + sorting scatter) on their "
          f"own; seconds")
    head = (f"{'backend':<11}{'P':>8}{'path':>7}{'fwd+bwd':>10}{'pairs':>10}{'tree':>10}"
            f"{'dense':>10}{'sort':>10}{'pairs/sort':>11}{'fb/sort':>9}")
    print(head)
    print("-" * len(head))
    for p in (int(v) for v in args.positives):
        x_host, t_host = problem(n, p)
        for tg in targets:
            x, t = tg.convert(x_host), tg.convert(t_host)
            fb = tg.timed(lambda: rg.rank_sort_loss(x, t, 0.5, "bucketed"))
            run, path = pair_terms(tg, x_host, t_host)
            pairs = tg.timed(run)
            with _PairPath("tree"):
                tree = tg.timed(pair_terms(tg, x_host, t_host)[0])
            dense = None
            if p <= args.dense_max:
                with _PairPath("dense"):
                    dense = tg.timed(pair_terms(tg, x_host, t_host)[0])
            srt = tg.timed(lambda: tg.sort(x))
            dcell = f"{dense:10.4f}" if dense is not None else f"{'-':>10}"
            print(f"{tg.name:<11}{p:>8}{path:>7}{fb:10.4f}{pairs:10.4f}{tree:10.4f}{dcell}"
                  f"{srt:10.4f}{pairs / srt:10.1f}x{fb / srt:8.1f}x", flush=True)


def run_crossover(args, targets):
    print("pair terms (sorting terms + sorting scatter): dense chunks against the segment tree "
          "(N = 10 P); seconds")
    head = f"{'backend':<11}{'P':>8}{'dense':>10}{'tree':>10}{'dense/tree':>12}"
    print(head)
    print("-" * len(head))
    for tg in targets:
        crossover = 0
        for p in (int(v) for v in args.positives):
            x_host, t_host = problem(10 * p, p)
            with _PairPath("dense"):
                dense = tg.timed(pair_terms(tg, x_host, t_host)[0])
            with _PairPath("tree"):
                tree = tg.timed(pair_terms(tg, x_host, t_host)[0])
            if dense < tree:
                crossover = p
            print(f"{tg.name:<11}{p:>8}{dense:10.4f}{tree:10.4f}{dense / tree:11.2f}x",
                  flush=True)
        print(f"{tg.name}: dense chunks faster up to P = {crossover} (largest P measured "
              f"where they win)")


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


def census_problem(kind, n, p=1000, classes=16, seed=0):
    """The census inputs (torch CPU tensors) and the call to count, for ``kind`` RS, AP or GAP
    with about ``n`` logits."""
    import torch

    import rankref_gpu as rg

    if kind == "GAP":
        rows = max(n // classes, p + 1)
        rng = np.random.default_rng(seed)
        s = rng.standard_normal((rows, classes), dtype=np.float32) * np.float32(0.3) - np.float32(
            4.6)
        y = np.full(rows, classes, dtype=np.int64)
        fg = rng.choice(rows, p, replace=False)
        y[fg] = rng.integers(0, classes, p)
        s[fg, y[fg]] += np.float32(0.2)
        counts = np.bincount(y[y < classes], minlength=classes).astype(np.float64)
        S, Y = torch.from_numpy(s), torch.from_numpy(y)
        return rows * classes, lambda: rg.gap_loss(S, Y, counts, 0.5)
    x, t = problem(n, p, seed)
    X = torch.from_numpy(x)
    if kind == "AP":
        T = torch.from_numpy((t > 0).astype(np.float32))
        return n, lambda: rg.ap_loss(X, T, 0.5)
    T = torch.from_numpy(t)
    return n, lambda: rg.rank_sort_loss(X, T, 0.5)


def run_census(args):
    import torch

    from rankref_gpu import _backend
    from rankref_gpu._census import DEVICES, LAUNCH_S, SYNC_S, Census, extrapolate, roofline

    sizes = [int(v) for v in (args.sizes or [2**20, 2**23])]
    kinds = args.losses or ["RS", "AP", "GAP"]
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"op census on torch CPU tensors ({args.paths} code paths), float32 logits, delta = "
          f"0.5, P = 1e3; roofline: bytes / bandwidth + kern x {LAUNCH_S * 1e6:g} us + syncs x "
          f"{SYNC_S * 1e6:g} us; bandwidth " + ", ".join(f"{k} {v / 1e12:g} TB/s"
                                                       for k, v in DEVICES.items()))
    head = (f"{'loss':<5}{'N':>10}{'ops':>6}{'kern':>6}{'ops>=N/4':>9}{'B/logit':>9}"
            f"{'syncs':>6}" + "".join(f"{k + ' ms':>10}" for k in DEVICES)
            + "".join(f"{k + '@1e8':>10}" for k in DEVICES))
    print(head)
    print("-" * len(head))
    keep = _backend._CUDA_PATHS_ON_CPU
    notes = []
    try:
        _backend._CUDA_PATHS_ON_CPU = args.paths == "cuda"
        for kind in kinds:
            rows = []
            for n in sizes:
                N, call = census_problem(kind, n)
                call()  # warm-up: lazy imports and caches are not part of the census
                with Census(big=N // 4) as c:
                    call()
                rows.append((N, c, c.kernels))
                notes.append(f"{kind} N={N}: syncs {c.sync_names}")
            (n0, c0, k0), (n1, c1, k1) = rows[0], rows[-1]
            for N, c, kern in rows:
                here = [roofline(c.bytes, kern, c.syncs, bw) for bw in DEVICES.values()]
                big = [roofline(extrapolate(n0, c0.bytes, n1, c1.bytes, 1e8),
                                extrapolate(n0, k0, n1, k1, 1e8), c1.syncs, bw)
                       for bw in DEVICES.values()] if n1 != n0 else [float("nan")] * 2
                print(f"{kind:<5}{N:>10}{c.ops:>6}{kern:>6}{c.big_ops:>9}{c.bytes / N:>9.1f}"
                      f"{c.syncs:>6}" + "".join(f"{v * 1e3:>10.3f}" for v in here)
                      + "".join(f"{v * 1e3:>10.2f}" for v in big), flush=True)
    finally:
        _backend._CUDA_PATHS_ON_CPU = keep
    for line in notes:
        print(line)
    if args.detail:
        print("heaviest operators over N-sized tensors at the last size (calls, bytes/logit):")
        for name, (calls, b) in c.by_name(big_only=True).items():
            print(f"  {name:<28}{calls:>5}{b / N:>9.1f}")
    return 0


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
    parser.add_argument("--pairs", action="store_true",
                        help="P sweep at N = 1e6 (first --sizes): the pair terms on their own")
    parser.add_argument("--crossover", action="store_true",
                        help="dense pair terms against the segment tree, by P")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--dense-max", type=float, default=None,
                        help="--pairs: time the forced dense pair terms up to this P")
    parser.add_argument("--census", action="store_true",
                        help="op census on the CPU (launches, bytes per logit, host syncs) and "
                             "the roofline GPU estimate")
    parser.add_argument("--paths", choices=("cuda", "cpu"), default="cuda",
                        help="--census: count the code paths of a CUDA device (default) or of "
                             "torch CPU")
    parser.add_argument("--losses", nargs="*", choices=("RS", "AP", "GAP"),
                        help="--census: the losses (default all three)")
    parser.add_argument("--detail", action="store_true",
                        help="--census: the heaviest operators of the last case")
    args = parser.parse_args(argv)
    if args.census:
        return run_census(args)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
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
    on_cpu = args.cpu or not (cuda or has_cupy)
    if on_cpu:
        if not args.cpu:
            print("no CUDA device (torch) and no CuPy: running the CPU mode (--cpu)")
        names = ["numpy"] + (["torch-cpu"] if torch is not None else [])
    else:
        names = (["torch-cuda"] if cuda else []) + (["cupy"] if has_cupy else [])
    if args.pairs or args.crossover:
        sweep = [1e2, 3e2, 1e3, 3e3, 1e4, 3e4, 1e5]
        small = [64, 128, 256, 512, 1024, 2048, 4096] + ([] if on_cpu else [8192, 16384])
        args.positives = args.positives or (sweep if args.pairs else small)
        args.repeat = args.repeat or 3
        args.dense_max = args.dense_max or (1e4 if on_cpu else 3e4)
        targets = [Target(name, args.repeat) for name in names]
        threads = torch.get_num_threads() if torch is not None else "-"
        print(f"rankref_gpu on {', '.join(t.name for t in targets)} "
              f"({targets[0].device_name()}); float32 logits, delta = 0.5, median of "
              f"{args.repeat} runs; torch threads: {threads}")
        return run_pairs(args, targets) if args.pairs else run_crossover(args, targets)
    if on_cpu:
        args.sizes = args.sizes or [1e5, 1e6]
        args.positives = args.positives or [1e2, 1e3]
        args.repeat = args.repeat or 5
        args.official_max = args.official_max or 1e8
    else:
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
