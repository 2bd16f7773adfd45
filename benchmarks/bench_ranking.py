"""CPU benchmark of rank_sort_loss: dense oracle, published BRS and exact bucketed vs np.sort.

Usage:
    python benchmarks/bench_ranking.py [--threads 1] [--quick] [--max-dense-seconds 60]
           [--delta 0.5] [--plot [OUT.png]] [--no-progress]
        the N grid (the same as ``rankref bench``; ``--help`` describes every option)
    python benchmarks/bench_ranking.py --pairs [--n 1e6] [--plot [OUT.png]]
        the P sweep: P = 1e2 .. 1e5 at N = 1e6, the positive-positive terms timed on their own,
        and the crossover between the direct O(P^2) loops and the O(P log P) window sums
    python benchmarks/bench_ranking.py --loaded [--busy 3]
        the mean time per call with the default threads and with one thread while other
        processes keep the CPUs busy (a parallel region must never make a call slower than
        1.5x its one-thread time)

Every timing is the best of a few runs (the loaded mode: the mean), and every ratio is against a
baseline measured in the same run on the same logits: ``np.sort`` of the N float32 logits
(NumPy's SIMD sort where the CPU has it) and of the same logits in float64.  Values and
gradients are computed together, on one thread unless said otherwise.
"""
import argparse
import sys


def _scaling(argv):
    parser = argparse.ArgumentParser(
        prog="bench_ranking.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Scaling benchmarks of the bucket engine (the N grid: run without "
                    "--pairs/--loaded, or 'rankref bench').")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--pairs", action="store_true",
                      help="P sweep at a fixed N, with the pair terms timed on their own, and "
                           "the direct/window-sum crossover")
    mode.add_argument("--loaded", action="store_true",
                      help="default threads against one thread on a busy machine")
    parser.add_argument("--n", type=float, default=1e6, help="N of the P sweep")
    parser.add_argument("--busy", type=int, default=3,
                        help="busy processes started for --loaded")
    parser.add_argument("--calls", type=int, default=20,
                        help="calls per size and setting for --loaded")
    parser.add_argument("--plot", nargs="?", const="rankref-pairs.png", metavar="OUT.png",
                        help="draw the P sweep (a PNG)")
    args = parser.parse_args(argv)
    from rankref import _bench_scaling as bs

    if args.pairs:
        rows = bs.run_pair_sweep(n=int(args.n))
        print()
        bs.run_crossover()
        if args.plot:
            print(f"\nwrote {bs.plot_pair_sweep(rows, args.plot)}")
    else:
        bs.run_loaded(busy=args.busy, calls=args.calls)
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    if {"--pairs", "--loaded"} & set(argv):
        sys.exit(_scaling(argv))
    from rankref.cli import main

    sys.exit(main(["bench"] + argv))
