"""CPU benchmark of gap_loss (ROG): dense oracle vs bucketed, against np.sort of the n*C scores.

Usage: python benchmarks/bench_gap.py [--threads 1]

LVIS-like: n=2048 RoIs x C=1203 classes, 300 positives over 100 classes.
COCO-like: n=512 RoIs x C=80 classes, 128 positives over 30 classes.
Timings are the best of several runs; ratios use baselines measured in the same run.
"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np

    import rankref as rr
    from rankref._bench import _best as best
    from rankref.synthetic import long_tail_batch

    print(f"rankref {rr.__version__}, numpy {np.__version__}, OpenMP threads: {args.threads}, "
          f"delta=0.5, gamma=1, float32 scores")
    head = (f"{'case':<12}{'regime':<9}{'n x C':>14}{'P':>5}{'classes':>8}{'dense s':>9}"
            f"{'bucketed s':>11}{'sort s':>9}{'dense/bkt':>10}{'bkt/sort':>9}{'max|dgrad|':>11}")
    print(head)
    print("-" * len(head))
    for name, n, C, P, present in (("LVIS-like", 2048, 1203, 300, 100),
                                   ("COCO-like", 512, 80, 128, 30)):
        for regime in ("early", "trained"):
            s, y = long_tail_batch(n, C, P, present, regime, seed=1)
            counts = rr.ClassCounts(C).update(y)
            sort = best(lambda: np.sort(s, axis=None), 7)
            bkt = best(lambda: rr.gap_loss(s, y, counts), 7)
            dense = best(lambda: rr.gap_loss(s, y, counts, method="dense"), 1)
            a = rr.gap_loss(s, y, counts)
            b = rr.gap_loss(s, y, counts, method="dense")
            err = float(np.abs(a.grad.astype(np.float64) - b.grad).max())
            print(f"{name:<12}{regime:<9}{f'{n}x{C}':>14}{P:>5}{len(np.unique(y[y < C])):>8}"
                  f"{dense:9.3f}{bkt:11.4f}{sort:9.4f}{dense / bkt:9.0f}x{bkt / sort:8.2f}x"
                  f"{err:11.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
