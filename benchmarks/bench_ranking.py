"""CPU benchmark of rank_sort_loss: dense oracle, published BRS and exact bucketed vs np.sort.

Usage: python benchmarks/bench_ranking.py [--threads 1] [--quick] [--max-dense-seconds 60]
       [--delta 0.5] [--plot [OUT.png]] [--no-progress]     (the same as ``rankref bench``;
       ``--help`` describes every option and its default)

Every timing is the best of a few runs, and every ratio is against a baseline measured in the
same run on the same logits: ``np.sort`` of the N float32 logits (NumPy's SIMD sort where the
CPU has it) and of the same logits in float64.  Values and gradients are computed together.
Peak extra memory is the tracemalloc peak of one bucketed call, per logit.
"""
import sys

from rankref.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench"] + sys.argv[1:]))
