r"""Audit another implementation of a loss or sampler against rankref (``rankref crosscheck``).

A battery of generated cases is run through the audited callable and through rankref, and every
case gets one of five outcomes:

========= =================================================================================
PASS      the values and the gradient agree within ``rtol``/``atol``
FAIL      they differ (the report lists the worst entries)
ERROR     the callable raised, or ran longer than the per-case timeout
EXPECTED  a documented difference of the official code, shown with its reason and proof
          (``--convention official`` only)
SKIPPED   the case lies outside the official code's domain and has no variant inside it
          (``--convention official`` only)
========= =================================================================================

The ranking and GAP batteries span these regimes (the report counts the cases run per regime):
random logits; ties with negatives; a single and zero positives; a trained detector (positives
shifted up by 2, 4 and 6); precision-1 positives beside relevant negatives; every positive above
every negative; quality ties; several positives per tied group; no relevant negatives; huge
spreads; float16-rounded logits; a 2-D ``[anchors, classes]`` matrix; extreme delta; one
positive among 1e5 negatives (GAP: rows labelled -1 too).  ``balanced-l1`` compares per-entry
losses and gradients; ``iou-neg-sampler`` inclusion frequencies with the exact probabilities.
``explore=N`` (``--explore N``) runs N random cases more and shrinks the first failure to a
minimal input, printed as a runnable snippet.

The run "passes" (exit status 0) when no case FAILs or ERRORs; ``strict=True`` (``--strict``)
counts EXPECTED as a failure too, and a run of fewer than 8 cases.

Call conventions.  ``convention="rankref"`` (the default) calls the audited callable with
rankref's signatures, on NumPy arrays or torch tensors.  A torch callable returns its loss(es)
and rankref backpropagates through them; a NumPy callable returns its update too:

* rs, brs: ``f(logits, targets, delta)``; torch: ``(ranking, sorting)``, each output carrying
  its own gradient; NumPy: ``(ranking, sorting, grad)``.
* ap: ``f(logits, targets, delta)``; torch: ``loss``; NumPy: ``(loss, grad)``.
* gap: ``f(scores, labels, counts, delta)``, the weighted loss; NumPy: ``(loss, grad)``.
* balanced-l1: ``f(pred, target, alpha=, gamma=, beta=)``, per entry; NumPy: ``(loss, grad)``.
* iou-neg-sampler: ``f(max_overlaps, num_expected, rng=) -> indices``.

``convention="official"`` calls the official callables exactly as the official heads do:

* rs, ``RankSort`` (or ``RankSort.apply``): ``f(logits, targets, delta) -> (ranking,
  sorting)``; the whole update is expected on the ranking output, none on the sorting output.
* brs, ``BucketedRankSort``: as rs, on 1-D float32 logits (2-D cases run flattened).
* ap, ``APLoss.apply`` (RS, aLRP and BRS repositories): ``f(logits, targets, delta) -> loss``.
* ap, ``AP_loss`` (AP-Loss repository): ``f(logits, targets) -> (grad, loss[1])``, the update
  returned directly; delta is fixed at 1.0 (cases at another delta run at 1.0).
* gap, ``GAPLoss.apply`` (ROG): ``f(scores.reshape(-1), labels, counts.clamp(min=1), C, gamma,
  lam)``, which returns the *unweighted* ranking error (``gap_loss(...).ranking_error``) and
  whose backward carries ``lam`` times the weighted update (``lam * gap_loss(...).grad``);
  delta is fixed at 0.5 (cases at another delta run at 0.5) and there is no ignore label (ROG
  reads a row labelled -1 as a positive of class C-1, so those rows are dropped).  The battery
  passes ``gamma = 1.0`` and ``lam = 0.1``.

The two AP forms are told apart by their signature: a plain function of exactly two positional
parameters ``(logits, targets)`` is ``AP_loss``.  NumPy callables under the official convention
take the same arguments and return their update last (``AP_loss`` returns it first).

rankref's own result types (``RankSortResult`` ...) are accepted as NumPy returns.  A torch
``autograd.Function`` is called through ``apply``; a ``torch.nn.Module`` class is built with
``delta=`` (when it takes it) and called on the inputs; a module instance is called on the
inputs as configured.  ``framework="auto"`` takes for torch an autograd Function class or its
``.apply``, an ``nn.Module`` class or instance, and a function whose module uses torch; anything
else gets NumPy arrays.

The package's modules, one job each: ``_loading`` (naming the callable), ``_battery`` (the cases
and the explored ones), ``_conventions`` (how a callable is called, the official domains),
``_running`` (one case: calls, comparisons, timeouts and the proofs behind EXPECTED),
``_explore`` (random cases and shrinking), ``_report`` (the report), ``_audit``
(:func:`crosscheck`) and ``_cli`` (the sub-command).
"""
from ._audit import crosscheck
from ._battery import explore_case, make_cases, regime_of
from ._cli import add_parser, run
from ._conventions import CONVENTIONS, LOSSES, MIN_CASES, STATUSES, _guess_framework
from ._loading import load_callable
from ._report import CrosscheckReport, format_report
from ._running import brs_with_placement

__all__ = ["LOSSES", "CONVENTIONS", "STATUSES", "MIN_CASES", "CrosscheckReport",
           "load_callable", "make_cases", "regime_of", "explore_case", "crosscheck",
           "format_report", "brs_with_placement", "add_parser", "run"]
