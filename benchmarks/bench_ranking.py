"""CPU benchmark of rank_sort_loss: dense oracle, published BRS and exact bucketed vs np.sort.

Usage: python benchmarks/bench_ranking.py [--threads 1] [--quick] [--max-dense-seconds 60]

Every timing is the best of a few runs, and every ratio is against a baseline measured in the
same run on the same logits: ``np.sort`` of the N float32 logits (NumPy's SIMD sort where the
CPU has it) and of the same logits in float64.  Values and gradients are computed together.
Peak extra memory is the tracemalloc peak of one bucketed call, per logit.
"""
import argparse
import os
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP threads for the kernels (the target is for 1)")
    parser.add_argument("--quick", action="store_true", help="N up to 1e6 only")
    parser.add_argument("--max-dense-seconds", type=float, default=60.0)
    parser.add_argument("--delta", type=float, default=0.5)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before the kernels load

    import tracemalloc

    import numpy as np

    import rankref as rr
    from rankref.synthetic import detection_batch

    def best(fn, repeat):
        t = np.inf
        for _ in range(repeat):
            s = time.perf_counter()
            fn()
            t = min(t, time.perf_counter() - s)
        return t

    sizes = [10**5, 10**6] if args.quick else [10**5, 10**6, 10**7]
    print(f"rankref {rr.__version__}, numpy {np.__version__}, OpenMP threads: {args.threads} "
          f"(OpenMP {'on' if rr.openmp_enabled() else 'off'}), delta={args.delta}, "
          f"float32 logits")
    head = (f"{'regime':<8}{'N':>10}{'P':>6}{'dense s':>10}{'brs s':>9}{'bucketed s':>11}"
            f"{'sort32 s':>10}{'sort64 s':>10}{'bkt/sort32':>11}{'bkt/sort64':>11}"
            f"{'dense/bkt':>10}{'mem B/N':>8}")
    print(head)
    print("-" * len(head))
    for regime in ("early", "trained"):
        for n in sizes:
            for p in (100, 1000):
                x, t = detection_batch(num_anchors=n // 100, num_classes=100, num_positives=p,
                                       regime=regime, ignore_fraction=0.0, seed=n + p)
                x, t = x.ravel(), t.ravel()
                rep = 5 if n <= 10**6 else 3
                sort32 = best(lambda: np.sort(x), rep)
                x64 = x.astype(np.float64)
                sort64 = best(lambda: np.sort(x64), rep)
                bkt = best(lambda: rr.rank_sort_loss(x, t, args.delta, "bucketed"), rep)
                brs = best(lambda: rr.rank_sort_loss(x, t, args.delta, "brs"), 1 if n >= 10**7 else 2)
                # dense: extrapolate from 10 positives, run only if under the limit
                t10 = t.copy()
                t10[np.flatnonzero(t > 0)[10:]] = 0.0
                est = best(lambda: rr.rank_sort_loss(x, t10, args.delta, "dense"), 1) * p / 10
                if est <= args.max_dense_seconds:
                    dense = best(lambda: rr.rank_sort_loss(x, t, args.delta, "dense"), 1)
                    dense_txt, ratio_txt = f"{dense:10.3f}", f"{dense / bkt:9.0f}x"
                else:
                    dense_txt, ratio_txt = f"{'~%.0f' % est:>10}", f"{'(~%.0fx)' % (est / bkt):>10}"
                tracemalloc.start()
                rr.rank_sort_loss(x, t, args.delta, "bucketed")
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                print(f"{regime:<8}{n:>10.0e}{p:>6}{dense_txt}{brs:9.3f}{bkt:11.4f}"
                      f"{sort32:10.4f}{sort64:10.4f}{bkt / sort32:10.2f}x{bkt / sort64:10.2f}x"
                      f"{ratio_txt}{peak / n:8.1f}", flush=True)
    print("\ndense values in '~' are extrapolated from 10 positives (skipped: over the limit).")
    print("mem B/N: peak bytes allocated by one bucketed call per logit (outputs included: "
          "3 float32 gradients = 12 B/N, int32 bucket ids = 4 B/N).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
