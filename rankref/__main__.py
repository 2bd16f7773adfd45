"""``python -m rankref``: dense, bucketed and BRS agree on a synthetic detection batch."""
import argparse
import sys
import time

import numpy as np

from . import ap_loss, openmp_enabled, rank_sort_loss
from .synthetic import detection_batch


def _timed(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def demo(num_anchors=4000, num_classes=80, num_positives=250, regime="early", seed=0,
         repeat=3, file=None):
    """Print the agreement table of the three methods and their timings; return its rows."""
    file = file or sys.stdout
    logits, targets = detection_batch(num_anchors, num_classes, num_positives, regime, seed=seed)
    ap_targets = np.where(targets > 0, 1.0, targets)
    print(f"rankref demo: synthetic detection batch ({regime} training), "
          f"{num_anchors} anchors x {num_classes} classes = {logits.size:,} float32 logits, "
          f"{num_positives} positives (IoU targets), OpenMP: {openmp_enabled()}", file=file)
    print("max |diff| is taken against the dense O(P*N) oracle; BRS compares positives with "
          "bucket means,\nexact at delta = 0 only.\n", file=file)
    header = (f"{'loss':<5}{'delta':>6}  {'method':<9}{'loss value(s)':>26}{'max|dloss|':>12}"
              f"{'max|dgrad|':>12}{'time ms':>10}{'vs dense':>10}")
    print(header, file=file)
    print("-" * len(header), file=file)
    rows = []
    cases = [("RS", 0.5, ("dense", "bucketed", "brs")), ("RS", 0.0, ("dense", "bucketed", "brs")),
             ("AP", 1.0, ("dense", "bucketed"))]
    for loss, delta, methods in cases:
        ref = None
        for method in methods:
            if loss == "RS":
                res, sec = _timed(lambda: rank_sort_loss(logits, targets, delta, method), repeat)
                vals = (res.ranking_loss, res.sorting_loss)
            else:
                res, sec = _timed(lambda: ap_loss(logits, ap_targets, delta, True, method), repeat)
                vals = (res.loss,)
            if ref is None:
                ref = (vals, res.grad.astype(np.float64), sec)
            dloss = max(abs(a - b) for a, b in zip(vals, ref[0]))
            dgrad = float(np.abs(res.grad.astype(np.float64) - ref[1]).max())
            text = " / ".join(f"{v:.6f}" for v in vals)
            speed = ref[2] / sec
            rows.append((loss, delta, method, vals, dloss, dgrad, sec))
            print(f"{loss:<5}{delta:>6.2f}  {method:<9}{text:>26}{dloss:>12.1e}{dgrad:>12.1e}"
                  f"{sec * 1e3:>10.1f}{speed:>9.0f}x", file=file)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rankref", description=__doc__)
    parser.add_argument("--anchors", type=int, default=4000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--positives", type=int, default=250)
    parser.add_argument("--regime", choices=("early", "trained"), default="early")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    demo(args.anchors, args.classes, args.positives, args.regime, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
