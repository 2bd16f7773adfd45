"""The CPU benchmarks of rankref (``rankref bench`` and ``benchmarks/bench_ranking.py``).

Every timing is the best of a few runs, and every ratio is against a baseline measured in the
same run on the same logits: ``np.sort`` of the N float32 logits and of the same logits in
float64.  Values and gradients are computed together.

Each table is one function (``ranking_table``) built from a list of ``Column``, a function that
measures one row, and ``print_table``, which prints every row as soon as it is measured, through
the progress bar's writer so that the bar never splits a row.
"""
import sys
import time
import tracemalloc
from typing import Callable, NamedTuple

import numpy as np

from . import _kernels, openmp_enabled, rank_sort_loss
from .synthetic import detection_batch

__all__ = ["ratio_text", "Column", "print_table", "ranking_case", "ranking_table",
           "run_ranking_bench", "plot_ranking_bench"]


def ratio_text(ratio):
    """A speed ratio for a table: one decimal below 10 (``0.8x``, ``9.5x``), none above
    (``12x``)."""
    if not np.isfinite(ratio):
        return "-"
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _best(fn, repeat):
    t = np.inf
    for _ in range(repeat):
        s = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - s)
    return t


class _Progress:
    """A tqdm bar on stderr when tqdm is installed and stderr is a terminal; ``write`` prints a
    line without mixing it with the bar."""

    def __init__(self, total, enabled, desc):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc=desc, leave=False, disable=None)

    def write(self, line, file):
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line, file=file)  # clears the bar, writes, redraws it
            file.flush()
        else:
            print(line, file=file, flush=True)

    def update(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Column(NamedTuple):
    """One column of a table: its title, its width (negative: left-aligned) and how a row (a
    dict) is written in it."""

    title: str
    width: int
    text: Callable[[dict], str]


def _cells(columns, texts):
    return "".join(f"{s:<{-c.width}}" if c.width < 0 else f"{s:>{c.width}}"
                   for c, s in zip(columns, texts))


def print_table(columns, cases, measure, progress=True, file=None, desc="rankref bench"):
    """Print the header, then one row per case as soon as ``measure(*case)`` returns it (a
    dict); return the rows."""
    file = file or sys.stdout
    header = _cells(columns, [c.title for c in columns])
    print(header, file=file)
    print("-" * len(header), file=file, flush=True)
    bar = _Progress(len(cases), progress, desc)
    rows = []
    try:
        for case in cases:
            row = measure(*case)
            rows.append(row)
            bar.write(_cells(columns, [c.text(row) for c in columns]), file)
            bar.update()
    finally:
        bar.close()
    return rows


def ranking_case(regime, n, p, delta=0.5, max_dense_seconds=60.0):
    """Time dense, BRS and bucketed ``rank_sort_loss`` and the ``np.sort`` baselines on one
    synthetic batch of ``n`` float32 logits with ``p`` positives; return the row."""
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
    dense = (_best(lambda: rank_sort_loss(x, t, delta, "dense"), 1)
             if est <= max_dense_seconds else None)
    tracemalloc.start()
    rank_sort_loss(x, t, delta, "bucketed")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dict(regime=regime, n=n, p=p, dense=dense, dense_estimate=est, brs=brs,
                bucketed=bkt, sort32=sort32, sort64=sort64, mem_per_logit=peak / n)


def _dense_text(r):
    return f"{r['dense']:.3f}" if r["dense"] is not None else f"~{r['dense_estimate']:.3g}"


def _dense_ratio(r):
    if r["dense"] is not None:
        return ratio_text(r["dense"] / r["bucketed"])
    return f"(~{ratio_text(r['dense_estimate'] / r['bucketed'])})"


RANKING_COLUMNS = [
    Column("regime", -8, lambda r: r["regime"]),
    Column("N", 8, lambda r: f"{r['n']:.0e}"),
    Column("P", 6, lambda r: f"{r['p']}"),
    Column("dense s", 10, _dense_text),
    Column("brs s", 9, lambda r: f"{r['brs']:.3f}"),
    Column("bucketed s", 12, lambda r: f"{r['bucketed']:.4f}"),
    Column("sort32 s", 10, lambda r: f"{r['sort32']:.4f}"),
    Column("sort64 s", 10, lambda r: f"{r['sort64']:.4f}"),
    Column("bkt/sort32", 12, lambda r: f"{r['bucketed'] / r['sort32']:.2f}x"),
    Column("bkt/sort64", 12, lambda r: f"{r['bucketed'] / r['sort64']:.2f}x"),
    Column("dense/bkt", 11, _dense_ratio),
    Column("mem B/N", 9, lambda r: f"{r['mem_per_logit']:.1f}"),
]


def ranking_table(sizes, positives=(100, 1000), regimes=("early", "trained"), delta=0.5,
                  max_dense_seconds=60.0, progress=True, file=None):
    """The table of ``rank_sort_loss`` against N: one row per regime, N and P; returns the
    rows."""
    file = file or sys.stdout
    cases = [(r, n, p, delta, max_dense_seconds) for r in regimes for n in sizes
             for p in positives]
    rows = print_table(RANKING_COLUMNS, cases, ranking_case, progress, file)
    print("\ndense values in '~' are extrapolated from 10 positives (skipped: over "
          f"{max_dense_seconds:g} s).", file=file)
    print("mem B/N: peak bytes allocated by one bucketed call per logit (outputs included: "
          "3 float32 gradients = 12 B/N, int32 bucket ids = 4 B/N).", file=file)
    return rows


def run_ranking_bench(threads=1, quick=False, max_dense_seconds=60.0, delta=0.5,
                      progress=True, file=None):
    """Run the benchmark grid and print its table; returns the rows as dicts.

    Grid: N in {1e5, 1e6, 1e7} ({1e5, 1e6} when ``quick``), P in {100, 1000}, and the
    "early training" (all logits near the prior) and "trained" (negatives far below) regimes.
    Dense runs only where its estimate (from 10 positives) is under ``max_dense_seconds``.
    """
    from . import __version__

    file = file or sys.stdout
    _kernels.set_num_threads(int(threads))
    sizes = [10**5, 10**6] if quick else [10**5, 10**6, 10**7]
    print(f"rankref {__version__}, numpy {np.__version__}, threads: {_kernels.get_num_threads()} "
          f"(OpenMP {'on' if openmp_enabled() else 'off'}), delta={delta}, float32 logits; "
          "times in seconds (best of a few runs)", file=file)
    return ranking_table(sizes, delta=delta, max_dense_seconds=max_dense_seconds,
                         progress=progress, file=file)


REGIME_TITLES = {"early": "early training: every logit near the prior",
                 "trained": "trained: the negatives far below the positives"}


def plot_ranking_bench(rows, path="rankref-bench.png"):
    """Time against N, log-log, for dense, BRS and bucketed, with ``np.sort`` as the reference;
    one panel per regime.  Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = (("dense", "C3", "dense oracle"), ("brs", "C1", "BRS (published)"),
               ("bucketed", "C0", "bucketed (exact)"))
    styles = {100: "--", 1000: "-"}
    regimes = [r for r in REGIME_TITLES if any(row["regime"] == r for row in rows)]
    fig, axes = plt.subplots(1, len(regimes), figsize=(5.5 * len(regimes), 4.6), sharey=True,
                             squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        for p in sorted({r["p"] for r in rows}):
            sel = sorted((r for r in rows if r["regime"] == regime and r["p"] == p),
                         key=lambda r: r["n"])
            n = [r["n"] for r in sel]
            for key, color, _ in methods:
                if key == "dense":
                    ys = [r["dense"] if r["dense"] is not None else r["dense_estimate"]
                          for r in sel]
                    est = [r["dense"] is None for r in sel]
                    ax.loglog(n, ys, styles.get(p, ":"), color=color)
                    ax.loglog([a for a, e in zip(n, est) if not e],
                              [y for y, e in zip(ys, est) if not e], "o", color=color)
                    ax.loglog([a for a, e in zip(n, est) if e],
                              [y for y, e in zip(ys, est) if e], "o", mfc="none", color=color)
                else:
                    ax.loglog(n, [r[key] for r in sel], styles.get(p, ":"), marker="o",
                              color=color)
        sort_rows = sorted((r for r in rows if r["regime"] == regime), key=lambda r: r["n"])
        by_n = {}
        for r in sort_rows:
            by_n[r["n"]] = min(by_n.get(r["n"], np.inf), r["sort32"])
        ax.loglog(list(by_n), list(by_n.values()), ":", color="k", marker="s", ms=4)
        ax.set(title=REGIME_TITLES[regime], xlabel="N (float32 logits)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("seconds (loss values and gradients)")
    handles = [Line2D([], [], color=c, marker="o", label=label) for _, c, label in methods]
    handles += [Line2D([], [], color="C3", marker="o", mfc="none", ls="",
                       label="dense, estimated from 10 positives"),
                Line2D([], [], color="k", ls=":", marker="s", ms=4, label="np.sort (float32)")]
    handles += [Line2D([], [], color="0.3", ls=ls, label=f"P = {p} positives")
                for p, ls in styles.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("rankref bench: rank_sort_loss against N", fontsize=11)
    fig.tight_layout(rect=(0, 0.11, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
