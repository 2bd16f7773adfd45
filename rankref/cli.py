"""The ``rankref`` command line (also ``python -m rankref``).

    rankref demo [--plot out.png]      dense, bucketed and BRS agree on a synthetic batch
    rankref crosscheck MODULE:CALLABLE --loss rs|ap|brs|gap|balanced-l1|iou-neg-sampler
    rankref bench [--quick] [--plot time_vs_n.png]

``python -m rankref`` with no sub-command runs the demo.
"""
import argparse
import sys
import time

import numpy as np

from . import ClassCounts, ap_loss, gap_loss, make_buckets, openmp_enabled, rank_sort_loss
from . import crosscheck
from .synthetic import detection_batch, long_tail_batch


def _timed(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def demo(num_anchors=4000, num_classes=80, num_positives=250, regime="early", seed=0,
         repeat=3, file=None):
    """Print the agreement table of dense, bucketed and BRS for RS, AP and GAP on a synthetic
    detection batch, with timings and speed-ups; return its rows."""
    file = file or sys.stdout
    logits, targets = detection_batch(num_anchors, num_classes, num_positives, regime, seed=seed)
    ap_targets = np.where(targets > 0, 1.0, targets)
    rois = max(64, num_anchors // 8)
    scores, labels = long_tail_batch(rois, num_classes, min(num_positives, rois // 2),
                                     min(num_classes, 30), regime, seed=seed)
    counts = ClassCounts(num_classes).update(labels)
    print(f"rankref demo: synthetic detection batch ({regime} training), "
          f"{num_anchors} anchors x {num_classes} classes = {logits.size:,} float32 logits, "
          f"{num_positives} positives (IoU targets); GAP on {rois} RoIs x {num_classes} "
          f"classes; OpenMP: {openmp_enabled()}", file=file)
    print("max |diff| is taken against the dense O(P*N) oracle; BRS compares positives with "
          "bucket means,\nexact at delta = 0 only.\n", file=file)
    header = (f"{'loss':<5}{'delta':>6}  {'method':<9}{'loss value(s)':>26}{'max|dloss|':>12}"
              f"{'max|dgrad|':>12}{'time ms':>10}{'vs dense':>10}")
    print(header, file=file)
    print("-" * len(header), file=file)
    rows = []
    cases = [("RS", 0.5, ("dense", "bucketed", "brs")), ("RS", 0.0, ("dense", "bucketed", "brs")),
             ("AP", 1.0, ("dense", "bucketed")), ("GAP", 0.5, ("dense", "bucketed"))]
    for loss, delta, methods in cases:
        ref = None
        for method in methods:
            if loss == "RS":
                res, sec = _timed(lambda: rank_sort_loss(logits, targets, delta, method), repeat)
                vals = (res.ranking_loss, res.sorting_loss)
            elif loss == "AP":
                res, sec = _timed(lambda: ap_loss(logits, ap_targets, delta, True, method), repeat)
                vals = (res.loss,)
            else:
                res, sec = _timed(lambda: gap_loss(scores, labels, counts, delta, 1.0, method),
                                  repeat)
                vals = (res.loss,)
            if ref is None:
                ref = (vals, res.grad.astype(np.float64), sec)
            dloss = max(abs(a - b) for a, b in zip(vals, ref[0]))
            dgrad = float(np.abs(res.grad.astype(np.float64) - ref[1]).max())
            text = " / ".join(f"{v:.6f}" for v in vals)
            rows.append((loss, delta, method, vals, dloss, dgrad, sec))
            print(f"{loss:<5}{delta:>6.2f}  {method:<9}{text:>26}{dloss:>12.1e}{dgrad:>12.1e}"
                  f"{sec * 1e3:>10.1f}{ref[2] / sec:>9.0f}x", file=file)
    return rows


def plot_demo(path, delta=0.5, seed=1):
    """Scores, buckets (exact breakpoints and BRS runs) and per-entry RS gradients of a small
    ranking, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0.0, 1.0, 60), rng.normal(0.8, 0.6, 8)])
    t = np.concatenate([np.zeros(60), rng.uniform(0.5, 1.0, 8)])
    exact = make_buckets(x, t, delta, "exact")
    brs = make_buckets(x, t, delta, "brs")
    g_exact = rank_sort_loss(x, t, delta, "bucketed").grad
    g_brs = rank_sort_loss(x, t, delta, "brs").grad
    pos = t > 0
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    ax0.scatter(x[~pos], np.zeros((~pos).sum()), s=18, color="0.4", label="negatives")
    sc = ax0.scatter(x[pos], np.zeros(pos.sum()), s=60, c=t[pos], cmap="viridis", marker="^",
                     label="positives (colour: IoU)")
    for e in exact.edges:
        ax0.axvline(e, color="C0", lw=0.6, alpha=0.6)
    full = brs.counts[1:] > 0
    ax0.scatter(brs.means[1:][full], np.full(full.sum(), -0.5), marker="|", s=300, color="C1",
                label="BRS bucket means")
    ax0.set(yticks=[], ylim=(-1, 1), title=f"scores and buckets (delta = {delta}); blue lines: "
            "exact breakpoints x_i +- delta")
    fig.colorbar(sc, ax=ax0, fraction=0.03)
    ax0.legend(loc="upper left", fontsize=8)
    ax1.vlines(x, 0, g_exact, color="C0", label="exact (bucketed = dense)")
    ax1.scatter(x, g_brs, s=10, color="C1", label="BRS", zorder=3)
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set(xlabel="logit", ylabel="gradient", title="per-entry RS gradient (positive: pushed "
            "down; negative: pushed up)")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _need_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'rankref[docs]' (or matplotlib)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo"] + argv  # python -m rankref [options] runs the demo
    parser = argparse.ArgumentParser(prog="rankref", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="dense, bucketed and BRS agree on a synthetic batch")
    p.add_argument("--anchors", type=int, default=4000)
    p.add_argument("--classes", type=int, default=80)
    p.add_argument("--positives", type=int, default=250)
    p.add_argument("--regime", choices=("early", "trained"), default="early")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="OUT.png", help="draw scores, buckets and gradients")

    crosscheck.add_parser(sub)

    p = sub.add_parser("bench", help="the CPU benchmark tables")
    p.add_argument("--quick", action="store_true", help="N up to 1e6 only")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-dense-seconds", type=float, default=60.0)
    p.add_argument("--delta", type=float, default=0.5)
    p.add_argument("--plot", metavar="OUT.png", help="time against N, log-log")
    p.add_argument("--no-progress", action="store_true")

    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.plot:
            _need_matplotlib()
        demo(args.anchors, args.classes, args.positives, args.regime, args.seed)
        if args.plot:
            print(f"\nwrote {plot_demo(args.plot)}")
        return 0
    if args.command == "crosscheck":
        return crosscheck.run(args)
    from ._bench import plot_ranking_bench, run_ranking_bench

    if args.plot:
        _need_matplotlib()
    rows = run_ranking_bench(args.threads, args.quick, args.max_dense_seconds, args.delta,
                             progress=not args.no_progress)
    if args.plot:
        print(f"\nwrote {plot_ranking_bench(rows, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
