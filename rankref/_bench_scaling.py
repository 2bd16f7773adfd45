"""Scaling benchmarks of the bucket engine (``benchmarks/bench_ranking.py --pairs/--loaded``).

* :func:`run_pair_sweep`: RS loss at a fixed N over P = 1e2 .. 1e5, with the positive-positive
  terms timed on their own, against ``np.sort`` of the same float32 logits, one thread.
* :func:`run_crossover`: the direct O(P^2) pair loops against the O(P log P) window sums.
* :func:`run_loaded`: the mean time per call with the default threads and with one thread while
  other processes keep the CPUs busy (the cost of a parallel region on a loaded machine).

Every ratio is against a baseline measured in the same run.
"""
import os
import subprocess
import sys
import time

import numpy as np

from . import _kernels, _pairs, rank_sort_loss
from ._engine import stable_argsort
from .synthetic import detection_batch

__all__ = ["run_pair_sweep", "plot_pair_sweep", "run_crossover", "run_loaded"]


def _best(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _batch(n, p, regime, seed):
    x, t = detection_batch(num_anchors=n // 100, num_classes=100, num_positives=p,
                           regime=regime, ignore_fraction=0.0, seed=seed)
    return x.ravel(), t.ravel()


def _pair_terms(x, t, delta):
    """The positive-positive work of one RS call (terms and sorting scatter), timed alone."""
    pos = np.flatnonzero(t > 0)
    pos = pos[stable_argsort(x[pos])]
    xp = x[pos].astype(np.float64)
    tp = t[pos].astype(np.float64)
    w = np.full(pos.size, 1.0 / max(pos.size, 1))

    def run():
        _pairs.rs_terms(xp, tp, delta)
        _pairs.rs_sorting_scatter(xp, tp, w, delta)
    return run


def run_pair_sweep(n=10**6, positives=(100, 300, 1000, 3000, 10**4, 3 * 10**4, 10**5),
                   regime="early", delta=0.5, repeat=3, file=None):
    """RS loss (values and gradients) at N = ``n`` over the P of ``positives``, one thread.

    Columns: the whole call, the pair terms alone, ``np.sort`` of the N float32 logits, and the
    ratios to that sort.  Returns the rows as dicts."""
    file = file or sys.stdout
    _kernels.set_num_threads(1)
    print(f"P sweep at N = {n:.0e} ({regime} regime, delta = {delta}, float32 logits, one "
          f"thread; best of {repeat})", file=file)
    head = (f"{'P':>8}{'RS s':>10}{'pairs s':>10}{'pairs %':>9}{'sort32 s':>10}"
            f"{'RS/sort':>9}{'pairs/sort':>11}")
    print(head, file=file)
    print("-" * len(head), file=file)
    rows = []
    for p in positives:
        x, t = _batch(n, int(p), regime, seed=int(p))
        sort32 = _best(lambda: np.sort(x), repeat + 2)
        total = _best(lambda: rank_sort_loss(x, t, delta), repeat)
        pairs = _best(_pair_terms(x, t, delta), repeat)
        rows.append(dict(n=n, p=int(p), total=total, pairs=pairs, sort32=sort32))
        print(f"{int(p):>8}{total:10.4f}{pairs:10.4f}{100 * pairs / total:8.0f}%{sort32:10.4f}"
              f"{total / sort32:8.1f}x{pairs / sort32:10.1f}x", file=file, flush=True)
    _kernels.set_num_threads(0)
    return rows


def plot_pair_sweep(rows, path):
    """Time against P, log-log: the whole RS call, the pair terms, and np.sort of N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = [r["p"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.loglog(p, [r["total"] for r in rows], "o-", color="C0", label="rank_sort_loss (bucketed)")
    ax.loglog(p, [r["pairs"] for r in rows], "s--", color="C1",
              label="positive-positive terms")
    ax.loglog(p, [r["sort32"] for r in rows], ":", color="k",
              label=f"np.sort of the N = {rows[0]['n']:.0e} logits")
    ref = np.array(p, dtype=float)
    scale = rows[-1]["pairs"] / (ref[-1] * np.log2(ref[-1]))
    ax.loglog(p, scale * ref * np.log2(ref), color="0.6", lw=0.8, label="P log P (reference)")
    ax.set(xlabel="P (positives)", ylabel="seconds (values and gradients, one thread)",
           title=f"RS loss at N = {rows[0]['n']:.0e}: time against P")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_crossover(positives=(4, 8, 16, 32, 48, 64, 96, 128, 256, 1024), delta=0.5, repeat=50,
                  file=None):
    """The direct O(P^2) pair loops against the window sums; returns ``(rows, crossover)``,
    the largest P at which the direct loops are still faster."""
    file = file or sys.stdout
    rng = np.random.default_rng(0)
    print(f"pair terms: direct O(P^2) loops against O(P log P) window sums (delta = {delta}; "
          f"best of {repeat})", file=file)
    print(f"{'P':>6}{'direct us':>12}{'window us':>12}{'direct/window':>15}", file=file)
    rows, crossover = [], 0
    keep = _pairs.DIRECT_MAX_P
    try:
        for p in positives:
            xp = np.sort(rng.normal(-4.4, 0.3, p))
            tp = rng.uniform(0.5, 1.0, p)
            w = np.full(p, 1.0 / p)
            times = []
            for limit in (10**9, -1):  # direct, then window sums
                _pairs.DIRECT_MAX_P = limit
                times.append(_best(lambda: (_pairs.rs_terms(xp, tp, delta),
                                            _pairs.rs_sorting_scatter(xp, tp, w, delta)), repeat))
            rows.append(dict(p=p, direct=times[0], window=times[1]))
            if times[0] <= times[1]:
                crossover = p
            print(f"{p:>6}{times[0] * 1e6:12.1f}{times[1] * 1e6:12.1f}{times[0] / times[1]:14.2f}x",
                  file=file, flush=True)
    finally:
        _pairs.DIRECT_MAX_P = keep
    print(f"the direct loops are faster up to P = {crossover} (rankref switches at P = {keep})",
          file=file)
    return rows, crossover


_SPIN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


def run_loaded(sizes=(2000, 20000, 2 * 10**5, 2 * 10**6, 10**7), busy=3, calls=20,
               positives=1000, delta=0.5, file=None):
    """Mean time per RS call with the default threads and with one thread, while ``busy``
    processes spin on the CPUs.  Calls alternate between the two settings so that both see the
    same load; the ratio default / one thread must stay at most 1.5 at every size."""
    file = file or sys.stdout
    default = _kernels.get_num_threads()
    print(f"loaded machine: {busy} busy processes on {os.cpu_count()} CPUs; default threads = "
          f"{default}; mean of {calls} calls each, alternating", file=file)
    print(f"{'N':>10}{'default ms':>12}{'1 thread ms':>13}{'default/1':>11}", file=file)
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=3600)])
             for _ in range(busy)]
    rows = []
    try:
        time.sleep(1.0)
        for n in sizes:
            x, t = _batch(max(int(n), 100), min(positives, max(int(n) // 100, 1)), "early",
                          seed=int(n))
            rank_sort_loss(x, t, delta)
            spent = {0: [], 1: []}
            for _ in range(calls):
                for threads in (0, 1):
                    _kernels.set_num_threads(threads)
                    start = time.perf_counter()
                    rank_sort_loss(x, t, delta)
                    spent[threads].append(time.perf_counter() - start)
            dflt, one = float(np.mean(spent[0])), float(np.mean(spent[1]))
            rows.append(dict(n=int(n), default=dflt, one=one))
            print(f"{int(n):>10}{dflt * 1e3:12.3f}{one * 1e3:13.3f}{dflt / one:10.2f}x",
                  file=file, flush=True)
    finally:
        _kernels.set_num_threads(0)
        for proc in procs:
            proc.kill()
            proc.wait()
    return rows
