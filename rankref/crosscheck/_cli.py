"""The ``rankref crosscheck`` sub-command: its parser and its run."""
import argparse
import contextlib
import os
import sys

from .._cli_types import _HelpFormatter, _at_least
from ._audit import _check_options, crosscheck
from ._conventions import DEFAULT_TIMEOUT, LOSSES, MIN_CASES
from ._loading import _folder_first, _search_folder, load_callable
from ._report import format_report

CLI_DESCRIPTION = f"""\
Audit another implementation of a loss (or sampler) against rankref: a battery of generated
cases runs through the callable and through rankref, and each case is PASS, FAIL, ERROR,
EXPECTED or SKIPPED.  The ranking and GAP batteries span these regimes: random logits, ties,
a single and zero positives, a trained detector (positives shifted up by 2, 4 and 6),
precision-1 positives beside relevant negatives, every positive above every negative, quality
ties, several positives per tied group, no relevant negatives, huge spreads, float16-rounded
logits, a 2-D [anchors, classes] matrix, delta = 0 and delta = 4 (GAP: 2), one positive among
1e5 negatives; the report counts the cases run per regime.  --explore N runs N random cases
more and shrinks the first failure to a minimal input, printed as a runnable snippet.

The callable, in either form (NAME may be dotted: RankSort.apply):
  MODULE:CALLABLE        imported with the current folder first, as python -m does
  path/to/file.py:NAME   a file, loaded as a module
for example
  rankref crosscheck mypkg.losses:RankSort --loss rs --convention official
  rankref crosscheck path/to/ranking_losses.py:APLoss.apply --loss ap --convention official
  rankref crosscheck mypkg.losses:my_rank_sort --loss rs --explore 200 --seed 1

The official callables, as their heads call them (--convention official):
  rs   RankSort / RankSort.apply     f(logits, targets, delta) -> (ranking, sorting);
                                     the whole update on the ranking output
  brs  BucketedRankSort              as rs; 1-D float32 logits (2-D cases are flattened)
  ap   APLoss.apply                  f(logits, targets, delta) -> loss
  ap   AP_loss (AP-Loss repository)  f(logits, targets) -> (grad, loss[1]); delta 1.0 only
  gap  GAPLoss.apply (ROG)           f(scores.reshape(-1), labels, counts.clamp(min=1), C,
                                     gamma, lam) -> unweighted ranking error; backward: lam x
                                     the weighted update; delta 0.5 only; no ignore label
Without --convention official, rankref's signatures apply (the docstring of
rankref.crosscheck lists them).

EXPECTED: a documented difference of the official code, printed with its reason and proof.
A case outside the official domain runs inside it instead (BRS: 2-D logits flattened;
AP_loss, GAPLoss: at their fixed delta; GAPLoss: the rows labelled -1 dropped); SKIPPED: a
case with no such variant (a GAP batch without foreground, which the ROG head never passes).
"""

CLI_EPILOG = f"""\
exit status:
  0  no case FAILs or ERRORs, and no explored case fails
  1  a case FAILs or ERRORs, or an explored case fails; with --strict also when a case is
     EXPECTED or fewer than {MIN_CASES} cases ran
  2  bad usage, before any case runs, with one line on stderr:
     * an unknown --loss, --convention, --cases or --framework, or a malformed number
     * a TARGET that is not MODULE:CALLABLE or path/to/file.py:NAME, a module or file that
       cannot be found or fails to import, a NAME the module does not have, or an object
       that is not callable
     * a convention the loss does not have (balanced-l1 and iou-neg-sampler: rankref's only)
     * --delta below 0 or not finite, --delta for a loss without one (balanced-l1,
       iou-neg-sampler), or a --delta that the official callable cannot take (AP_loss fixes
       1.0, GAPLoss 0.5)
     * --rtol or --atol below 0 or not finite, --timeout not above 0 or not finite
     * --explore or --seed below 0, --explore with iou-neg-sampler, --save-failure without
       --explore, not ending in .npz, or in a folder that does not exist
"""


def add_parser(subparsers):
    """Add the ``crosscheck`` sub-command to an ``argparse`` sub-parser collection; returns
    the sub-parser."""

    class Formatter(argparse.RawDescriptionHelpFormatter, _HelpFormatter):
        """The description and epilog as written; each option's default after its help."""

    p = subparsers.add_parser("crosscheck", help="audit another implementation against rankref",
                              description=CLI_DESCRIPTION, epilog=CLI_EPILOG,
                              formatter_class=Formatter)
    p.add_argument("target", metavar="TARGET",
                   help="the callable to audit: MODULE:CALLABLE (resolved from the current "
                        "folder, as python -m does) or path/to/file.py:NAME")
    p.add_argument("--loss", required=True, choices=LOSSES,
                   help="what the callable computes: rs (RS loss), ap (AP Loss), brs (Bucketed "
                        "RS), gap (ROG's GAP loss), balanced-l1, iou-neg-sampler (required)")
    p.add_argument("--convention", choices=("rankref", "official"), default="rankref",
                   help="official: call the official callables as their heads do (rs, brs, ap, "
                        "gap); rankref: rankref's signatures")
    p.add_argument("--cases", choices=("all", "quick"), default="all",
                   help=f"the whole battery, or its first {MIN_CASES} cases (GAP: 9)")
    p.add_argument("--framework", choices=("auto", "numpy", "torch"), default="auto",
                   help="array type passed to the callable (auto: torch for autograd Functions, "
                        "nn.Modules and functions whose module uses torch, NumPy otherwise)")
    p.add_argument("--delta", type=float, default=None,
                   help="the battery's delta; cases named 'delta = ...' keep their own "
                        "(default: 0.5; 1.0 for ap)")
    p.add_argument("--rtol", type=_at_least(float, 0.0), default=1e-4,
                   help="relative tolerance: an entry passes when its difference from "
                        "rankref's is at most atol + rtol x |rankref's value|")
    p.add_argument("--atol", type=_at_least(float, 0.0), default=1e-6,
                   help="absolute tolerance (see --rtol)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="seconds one case may run; a case running longer is an ERROR and the "
                        "run goes on (default: %(default)g)")
    p.add_argument("--explore", type=_at_least(int, 0), default=0, metavar="N",
                   help="run N random cases after the battery (sizes, ties, spreads, delta "
                        "where the callable takes it); the first failure is shrunk to a "
                        "minimal input and printed as a runnable NumPy snippet")
    p.add_argument("--seed", type=_at_least(int, 0), default=0, metavar="S",
                   help="the seed of the --explore cases")
    p.add_argument("--save-failure", metavar="FILE.npz", default=None,
                   help="keep the shrunk failure of --explore in FILE.npz (its inputs, both "
                        "outputs and the settings)")
    p.add_argument("--strict", action="store_true",
                   help=f"EXPECTED cases fail the run too, and so does a run of fewer than "
                        f"{MIN_CASES} cases")
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON (per-case status and reason)")
    return p


def _check_save(args):
    path = args.save_failure
    if path is None:
        return
    if not args.explore:
        raise ValueError("--save-failure keeps the shrunk failure of --explore; add "
                         "--explore N.")
    if not path.endswith(".npz"):
        raise ValueError(f"--save-failure takes a FILE.npz, got {path!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--save-failure: no such folder {folder}.")


def run(args):
    """Run the ``crosscheck`` sub-command from parsed arguments; returns the exit status."""
    prog = "rankref crosscheck"
    explore = getattr(args, "explore", 0)
    seed = getattr(args, "seed", 0)
    try:
        _check_options(args.loss, args.cases, args.convention, args.framework, args.rtol,
                       args.atol, args.delta, args.timeout, explore, seed)
        _check_save(args)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    with _folder_first(_search_folder(args.target)):  # for imports made at call time
        try:
            func = load_callable(args.target)
        except Exception as exc:  # import errors of the audited module included
            print(f"{prog}: cannot load {args.target}: {exc}", file=sys.stderr)
            return 2
        # what the audited code prints goes to stderr, so that --json output stays parseable
        try:
            with contextlib.redirect_stdout(sys.stderr):
                report = crosscheck(func, args.loss, args.cases, args.convention,
                                    args.framework, args.rtol, args.atol, args.delta,
                                    args.timeout, explore, seed, args.target,
                                    getattr(args, "save_failure", None))
        except (TypeError, ValueError) as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(report.to_json(args.target, args.strict))
    else:
        print(format_report(report, args.target, args.strict))
    return report.exit_status(args.strict)
