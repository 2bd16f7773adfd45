"""The CPU benchmark of rank_sort_loss (``rankref bench`` and ``benchmarks/bench_ranking.py``).

Every timing is the best of a few runs, and every ratio is against a baseline measured in the
same run on the same logits: ``np.sort`` of the N float32 logits and of the same logits in
float64.  Values and gradients are computed together.
"""
import time
import tracemalloc

import numpy as np

from . import _kernels, openmp_enabled, rank_sort_loss
from .synthetic import detection_batch

__all__ = ["run_ranking_bench", "plot_ranking_bench"]


def _best(fn, repeat):
    t = np.inf
    for _ in range(repeat):
        s = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - s)
    return t


class _Progress:
    """tqdm when it is installed, else nothing."""

    def __init__(self, total, enabled):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="rankref bench", leave=False)
            except ImportError:
                self.bar = None

    def update(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_ranking_bench(threads=1, quick=False, max_dense_seconds=60.0, delta=0.5,
                      progress=True, file=None):
    """Run the benchmark grid and print its table; returns the rows as dicts.

    Grid: N in {1e5, 1e6, 1e7} ({1e5, 1e6} when ``quick``), P in {100, 1000}, and the
    "early training" (all logits near the prior) and "trained" (negatives far below) regimes.
    Dense runs only where its estimate (from 10 positives) is under ``max_dense_seconds``.
    """
    import sys

    file = file or sys.stdout
    _kernels.set_num_threads(int(threads))
    sizes = [10**5, 10**6] if quick else [10**5, 10**6, 10**7]
    grid = [(r, n, p) for r in ("early", "trained") for n in sizes for p in (100, 1000)]
    from . import __version__

    print(f"rankref {__version__}, numpy {np.__version__}, threads: {_kernels.get_num_threads()} "
          f"(OpenMP {'on' if openmp_enabled() else 'off'}), delta={delta}, float32 logits",
          file=file)
    head = (f"{'regime':<8}{'N':>10}{'P':>6}{'dense s':>10}{'brs s':>9}{'bucketed s':>11}"
            f"{'sort32 s':>10}{'sort64 s':>10}{'bkt/sort32':>11}{'bkt/sort64':>11}"
            f"{'dense/bkt':>10}{'mem B/N':>8}")
    print(head, file=file)
    print("-" * len(head), file=file)
    bar = _Progress(len(grid), progress)
    rows = []
    for regime, n, p in grid:
        x, t = detection_batch(num_anchors=n // 100, num_classes=100, num_positives=p,
                               regime=regime, ignore_fraction=0.0, seed=n + p)
        x, t = x.ravel(), t.ravel()
        rep = 5 if n <= 10**6 else 3
        sort32 = _best(lambda: np.sort(x), rep)
        x64 = x.astype(np.float64)
        sort64 = _best(lambda: np.sort(x64), rep)
        bkt = _best(lambda: rank_sort_loss(x, t, delta, "bucketed"), rep)
        brs = _best(lambda: rank_sort_loss(x, t, delta, "brs"), 1 if n >= 10**7 else 2)
        t10 = t.copy()
        t10[np.flatnonzero(t > 0)[10:]] = 0.0
        est = _best(lambda: rank_sort_loss(x, t10, delta, "dense"), 1) * p / 10
        dense = _best(lambda: rank_sort_loss(x, t, delta, "dense"), 1) \
            if est <= max_dense_seconds else None
        tracemalloc.start()
        rank_sort_loss(x, t, delta, "bucketed")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        row = dict(regime=regime, n=n, p=p, dense=dense, dense_estimate=est, brs=brs,
                   bucketed=bkt, sort32=sort32, sort64=sort64, mem_per_logit=peak / n)
        rows.append(row)
        if dense is None:
            dense_txt, ratio_txt = f"{'~%.0f' % est:>10}", f"{'(~%.0fx)' % (est / bkt):>10}"
        else:
            dense_txt, ratio_txt = f"{dense:10.3f}", f"{dense / bkt:9.0f}x"
        bar.update()
        print(f"{regime:<8}{n:>10.0e}{p:>6}{dense_txt}{brs:9.3f}{bkt:11.4f}{sort32:10.4f}"
              f"{sort64:10.4f}{bkt / sort32:10.2f}x{bkt / sort64:10.2f}x{ratio_txt}"
              f"{peak / n:8.1f}", file=file, flush=True)
    bar.close()
    print("\ndense values in '~' are extrapolated from 10 positives (skipped: over the limit).",
          file=file)
    print("mem B/N: peak bytes allocated by one bucketed call per logit (outputs included: "
          "3 float32 gradients = 12 B/N, int32 bucket ids = 4 B/N).", file=file)
    return rows


def plot_ranking_bench(rows, path):
    """Time against N, log-log, for dense, brs and bucketed, with np.sort as the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, regime in zip(axes, ("early", "trained")):
        for p, style in ((100, "--"), (1000, "-")):
            sel = [r for r in rows if r["regime"] == regime and r["p"] == p]
            n = [r["n"] for r in sel]
            for key, color in (("dense", "C3"), ("brs", "C1"), ("bucketed", "C0")):
                ys = [r[key] if r[key] is not None else np.nan for r in sel]
                ax.loglog(n, ys, style, color=color, marker="o", label=f"{key}, P={p}")
            if p == 1000:
                ax.loglog(n, [r["sort32"] for r in sel], ":", color="k", label="np.sort (float32)")
        ax.set(title=f"{regime} training", xlabel="N (logits)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (values + gradients)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
