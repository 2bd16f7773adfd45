"""The ``rankref`` command line (also ``python -m rankref``).

    rankref demo [--plot [OUT.png]]    dense, bucketed and BRS agree on a synthetic batch
    rankref crosscheck MODULE:CALLABLE --loss rs|ap|brs|gap|balanced-l1|iou-neg-sampler
    rankref bench [--quick] [--plot [OUT.png]]
    rankref explain --loss rs|ap|gap --logits ... --targets ... [--delta D]
                                       every quantity of a loss on a small input, in a table

``python -m rankref`` with no sub-command runs the demo.
"""
import argparse
import sys
import time

import numpy as np

from . import ClassCounts, ap_loss, gap_loss, make_buckets, openmp_enabled, rank_sort_loss
from . import crosscheck
from . import explain as _explain
from ._bench import ratio_text
from ._cli_types import _HelpFormatter, _at_least  # noqa: F401  (shared with crosscheck)
from .synthetic import detection_batch, long_tail_batch

DESCRIPTION = """\
rankref: exact reference implementations of the ranking-based losses of object detection
(AP Loss, RS Loss, Bucketed RS, GAP) and of their imbalance tools.

'rankref' or 'python -m rankref' with no command runs the demo.
'rankref COMMAND --help' describes a command and its options."""

REGIMES = {"early": "early training", "trained": "trained model"}


def _timed(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def _demo_batch(num_anchors, num_classes, num_positives, regime, seed):
    """The synthetic detection batch of the demo: ``[anchors, classes]`` logits and targets."""
    return detection_batch(num_anchors, num_classes, num_positives, regime, seed=seed)


def demo(num_anchors=4000, num_classes=80, num_positives=250, regime="early", seed=0,
         repeat=3, file=None):
    """Print the agreement table of dense, bucketed and BRS for RS, AP and GAP on a synthetic
    detection batch, with timings and speed-ups; return its rows."""
    file = file or sys.stdout
    logits, targets = _demo_batch(num_anchors, num_classes, num_positives, regime, seed)
    ap_targets = np.where(targets > 0, 1.0, targets)
    rois = max(64, num_anchors // 8)
    scores, labels = long_tail_batch(rois, num_classes, min(num_positives, rois // 2),
                                     min(num_classes, 30), regime, seed=seed)
    counts = ClassCounts(num_classes).update(labels)
    print(f"rankref demo: synthetic detection batch ({REGIMES[regime]}), "
          f"{num_anchors} anchors x {num_classes} classes = {logits.size:,} float32 logits, "
          f"{int((targets > 0).sum())} positives (IoU targets; {int((targets < 0).sum()):,} "
          f"entries of ignored anchors); GAP on {rois} RoIs x {num_classes} classes; "
          f"OpenMP: {openmp_enabled()}", file=file)
    print("max |diff| is taken against the dense O(P*N) oracle; BRS compares positives with "
          "bucket means,\nexact at delta = 0 only.  Times: best of "
          f"{repeat}; 'vs dense': the dense time over the method's.\n", file=file)
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
                  f"{sec * 1e3:>10.1f}{ratio_text(ref[2] / sec):>10}", file=file)
    return rows


def plot_demo(path="rankref-demo.png", num_anchors=4000, num_classes=80, num_positives=250,
              regime="early", seed=0, delta=0.5):
    """Draw the RS rows of the demo table (``delta = 0.5`` by default) for the same batch, as a
    PNG: the logits, the updates of the positives and of the negatives (exact and BRS), and the
    error of BRS.  Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logits, targets = _demo_batch(num_anchors, num_classes, num_positives, regime, seed)
    exact = rank_sort_loss(logits, targets, delta, "bucketed")
    brs = rank_sort_loss(logits, targets, delta, "brs")
    num_exact = make_buckets(logits, targets, delta, "exact").counts.size
    num_brs = make_buckets(logits, targets, delta, "brs").counts.size
    x, t = logits.ravel().astype(np.float64), targets.ravel()
    g_exact, g_brs = exact.grad.ravel().astype(np.float64), brs.grad.ravel().astype(np.float64)
    pos, neg = np.flatnonzero(t > 0), np.flatnonzero(t == 0)
    neg = neg[np.argsort(x[neg], kind="stable")]  # a negative's update depends on its logit only
    iou = dict(c=t[pos], cmap="viridis", vmin=0.5, vmax=1.0)

    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    (ax_batch, ax_pos), (ax_neg, ax_err) = axes
    fig.suptitle(f"rankref demo --plot: the RS rows of the table (delta = {delta}) on its batch: "
                 f"{num_anchors} anchors x {num_classes} classes = {x.size:,} logits, "
                 f"{pos.size} positives, {REGIMES[regime]} (seed {seed})", fontsize=11)

    bins = np.linspace(x[t >= 0].min(), x[t >= 0].max(), 121)
    ax_batch.hist(x[neg], bins, color="0.55", label=f"negatives ({neg.size:,})")
    ax_batch.hist(x[pos], bins, color="C1", alpha=0.8, label=f"positives ({pos.size})")
    ax_batch.set(yscale="log", xlabel="logit", ylabel="entries per bin",
                 title=f"the logits: {num_exact} exact buckets (breakpoints x_i +- delta), "
                       f"{num_brs} BRS buckets")
    ax_batch.legend(loc="upper right", fontsize=8)

    ax_pos.axhline(0, color="k", lw=0.5)
    sc = ax_pos.scatter(x[pos], g_exact[pos], s=22, label="exact (bucketed = dense)", **iou)
    ax_pos.scatter(x[pos], g_brs[pos], s=12, marker="x", color="C3", lw=0.8, label="BRS")
    fig.colorbar(sc, ax=ax_pos, label="IoU target of the positive")
    ax_pos.set(xlabel="logit", ylabel="update of a positive (gradient)",
               title="positives: a negative update pushes up, a positive one down")
    ax_pos.legend(loc="upper left", fontsize=8)

    ax_neg.plot(x[neg], g_exact[neg], color="C0", lw=2, label="exact (bucketed = dense)")
    ax_neg.plot(x[neg], g_brs[neg], color="C3", lw=0.8, label="BRS (one value per bucket)")
    ax_neg.set(xlabel="logit", ylabel="update of a negative (gradient)",
               title="negatives: a positive update pushes down")
    ax_neg.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax_neg.legend(loc="upper left", fontsize=8)

    err = np.abs(g_brs - g_exact)
    shown = neg[err[neg] > 0]
    ax_err.plot(x[shown], err[shown], ".", ms=2, color="0.4", label="negatives")
    wrong = err[pos] > 0
    sc = ax_err.scatter(x[pos][wrong], err[pos][wrong], s=22, c=t[pos][wrong], cmap="viridis",
                        vmin=0.5, vmax=1.0, label="positives")
    fig.colorbar(sc, ax=ax_err, label="IoU target of the positive")
    if err.max() > 0:
        ax_err.set(yscale="log", ylabel="|BRS - exact| (zeros not drawn)",
                   title=f"error of BRS: largest {err.max():.1e} (the table's max|dgrad|)")
    else:
        ax_err.set(ylabel="|BRS - exact|", title="error of BRS: none, BRS is exact here")
    ax_err.set(xlabel="logit")
    ax_err.legend(loc="lower left", fontsize=8)
    for ax in axes.flat:
        ax.set_xlim(bins[0], bins[-1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


MATPLOTLIB_HINT = ("--plot needs matplotlib: pip install matplotlib (or, in the rankref source "
                   "folder, pip install \".[docs]\")")


def _need_matplotlib(parser):
    """Stop with a usage error when matplotlib is missing (before any work starts)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error(MATPLOTLIB_HINT)


def _check_plot_path(parser, path):
    """Stop with a usage error, before any work starts, when the PNG cannot be written to
    ``path``: a missing or unwritable folder, a folder in its place, or a format matplotlib
    does not write."""
    import os

    from matplotlib.figure import Figure

    folder = os.path.dirname(os.path.abspath(path))
    fix = "choose another OUT.png"
    if os.path.isdir(path):
        parser.error(f"argument --plot: {path!r} is a folder; give a file name, e.g. "
                     f"{os.path.join(path, 'out.png')!r}")
    if not os.path.isdir(folder):
        parser.error(f"argument --plot: the folder {folder!r} does not exist; create it or "
                     f"{fix}")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path)
                                                     and not os.access(path, os.W_OK)):
        parser.error(f"argument --plot: cannot write {path!r} (permission denied); {fix}")
    ext = os.path.splitext(path)[1][1:].lower()
    formats = Figure().canvas.get_supported_filetypes()
    if ext and ext not in formats:
        parser.error(f"argument --plot: matplotlib cannot write .{ext} files; use one of "
                     f"{', '.join('.' + f for f in sorted(formats))} (e.g. OUT.png)")


def _check_plot(parser, path):
    if path is not None:
        _need_matplotlib(parser)
        _check_plot_path(parser, path)


def _save_plot(draw, path, *args, **kwargs):
    """Draw and save the plot; a failed write (a full disk) is one line on stderr, exit 1."""
    try:
        return draw(path, *args, **kwargs)
    except OSError as exc:
        raise SystemExit(f"rankref: cannot write the plot {path!r}: {exc}") from None


MAX_DEMO_ENTRIES = 2**31 - 1  # logits of the demo's batch (anchors x classes)
MAX_THREADS = 1024  # --threads of bench


def build_parser():
    """The ``rankref`` argument parser: ``(parser, {command: sub-parser})``."""
    parser = argparse.ArgumentParser(prog="rankref", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="dense, bucketed and BRS agree on a synthetic batch",
        formatter_class=_HelpFormatter,
        description="Compute RS (delta 0.5 and 0), AP and GAP loss on a synthetic detection "
                    "batch with the dense oracle, the exact bucketed engine and the published "
                    "BRS, and print their values, differences and times.")
    p.add_argument("--anchors", type=_at_least(int, 1), default=4000,
                   help="anchors of the batch (rows of the logit matrix)")
    p.add_argument("--classes", type=_at_least(int, 1), default=80,
                   help="classes of the batch (columns of the logit matrix)")
    p.add_argument("--positives", type=_at_least(int, 1), default=250,
                   help="positive entries, with IoU targets in [0.5, 1]")
    p.add_argument("--regime", choices=("early", "trained"), default="early",
                   help="early: every logit near the prior log(0.01/0.99); trained: the "
                        "negatives far below the positives")
    p.add_argument("--seed", type=_at_least(int, 0), default=0,
                   help="seed of the synthetic batch")
    p.add_argument("--plot", nargs="?", const="rankref-demo.png", metavar="OUT.png",
                   help="also draw the RS rows (delta 0.5) of the table on the same batch: "
                        "its logits, the updates of positives and negatives, the error of BRS "
                        "(a PNG; rankref-demo.png when no name is given)")

    commands = {"demo": p, "crosscheck": crosscheck.add_parser(sub),
                "explain": _explain.add_parser(sub)}

    p = commands["bench"] = sub.add_parser(
        "bench", help="the CPU benchmark tables", formatter_class=_HelpFormatter,
        description="Time rank_sort_loss (dense oracle, published BRS, exact bucketed) on "
                    "synthetic batches of N float32 logits, with ratios against np.sort of the "
                    "same logits measured in the same run.  Rows are printed as they finish.")
    p.add_argument("--quick", action="store_true",
                   help="N in {1e5, 1e6} only (otherwise also 1e7)")
    p.add_argument("--threads", type=_at_least(int, 1, MAX_THREADS), default=1,
                   help="threads of rankref's kernels (OpenMP)")
    p.add_argument("--max-dense-seconds", type=_at_least(float, 0.0), default=60.0,
                   help="run the dense oracle only where its estimate (from 10 positives) is "
                        "below this many seconds; otherwise print the estimate")
    p.add_argument("--delta", type=_at_least(float, 0.0), default=0.5,
                   help="smoothing width of the relaxed step")
    p.add_argument("--plot", nargs="?", const="rankref-bench.png", metavar="OUT.png",
                   help="also draw time against N, log-log (a PNG; rankref-bench.png when no "
                        "name is given)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (the bar needs tqdm and goes to stderr)")

    return parser, commands


def main(argv=None):
    """Run the ``rankref`` command; returns the exit status.  A user's mistake (a bad option, a
    plot that cannot be written, matplotlib missing for --plot) stops with one line on stderr
    before any work starts, never with a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo"] + argv  # python -m rankref [options] runs the demo
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, commands[args.command])
    except KeyboardInterrupt:
        print("rankref: interrupted", file=sys.stderr)
        return 130


def _run(args, parser):
    if args.command == "demo":
        if args.positives > args.anchors * args.classes:
            parser.error(f"--positives {args.positives} is more than the "
                         f"{args.anchors} x {args.classes} entries of the batch")
        if args.anchors * args.classes > MAX_DEMO_ENTRIES:
            parser.error(f"--anchors {args.anchors} x --classes {args.classes} is more than "
                         f"the {MAX_DEMO_ENTRIES:,} logits a demo batch may have")
        _check_plot(parser, args.plot)
        try:
            demo(args.anchors, args.classes, args.positives, args.regime, args.seed)
            if args.plot:
                path = _save_plot(plot_demo, args.plot, args.anchors, args.classes,
                                  args.positives, args.regime, args.seed)
                print(f"\nwrote {path}")
        except MemoryError:
            raise SystemExit(f"rankref demo: not enough memory for {args.anchors} x "
                             f"{args.classes} logits; use fewer --anchors or --classes") from None
        return 0
    if args.command == "crosscheck":
        return crosscheck.run(args)
    if args.command == "explain":
        return _explain.run(args)
    from ._bench import plot_ranking_bench, run_ranking_bench

    _check_plot(parser, args.plot)
    rows = run_ranking_bench(args.threads, args.quick, args.max_dense_seconds, args.delta,
                             progress=not args.no_progress)
    if args.plot:
        print(f"\nwrote {_save_plot(plot_ranking_bench, args.plot, rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
