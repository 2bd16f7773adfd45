"""The audit: :func:`crosscheck` runs the battery (and ``--explore``) and builds the report."""
import importlib
import importlib.util
import math
import numbers

import numpy as np

from ._battery import make_cases, regime_of
from ._conventions import (
    CONVENTIONS,
    DEFAULT_DELTA,
    DEFAULT_TIMEOUT,
    LOSSES,
    _delta_parameter_hint,
    _guess_framework,
    _Plan,
)
from ._explore import explore as _explore
from ._report import CrosscheckReport
from ._running import evaluate


def _real(v):
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _check_options(loss, cases, convention, framework, rtol, atol, delta, timeout, explore=0,
                   seed=0):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}.")
    if isinstance(cases, str):
        if cases not in ("all", "quick"):
            raise ValueError(f"cases must be 'all', 'quick' or a list of (name, inputs), got "
                             f"{cases!r}.")
    elif not isinstance(cases, (list, tuple)) or not all(
            isinstance(c, (list, tuple)) and len(c) == 2 and isinstance(c[1], dict)
            for c in cases):
        raise ValueError("cases must be 'all', 'quick' or a list of (name, inputs) pairs, "
                         "inputs a dict as make_cases returns.")
    if convention not in ("rankref", "official"):
        raise ValueError(f"convention must be 'rankref' or 'official', got {convention!r}.")
    if convention not in CONVENTIONS[loss]:
        raise ValueError(f"--loss {loss} has no {convention!r} convention (it has: "
                         f"{', '.join(CONVENTIONS[loss])}); drop --convention {convention}.")
    if framework not in ("auto", "numpy", "torch"):
        raise ValueError(f"framework must be 'auto', 'numpy' or 'torch', got {framework!r}.")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not _real(v) or not v >= 0 or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}.")
    if delta is not None and (not _real(delta) or not delta >= 0 or not math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number >= 0 (or None for the loss's "
                         f"default), got {delta!r}.")
    if delta is not None and loss not in DEFAULT_DELTA:
        raise ValueError(f"--loss {loss} takes no delta; drop --delta.")
    if not _real(timeout) or not timeout > 0 or not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}.")
    for name, v in (("explore", explore), ("seed", seed)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}.")
    if explore and loss == "iou-neg-sampler":
        raise ValueError("--explore needs a deterministic loss: the sampler's cases compare "
                         "frequencies over many draws; drop --explore.")


def crosscheck(func, loss, cases="all", convention="rankref", framework="auto", rtol=1e-4,
               atol=1e-6, delta=None, timeout=DEFAULT_TIMEOUT, explore=0, seed=0, target=None,
               save_failure=None):
    """Run the battery of ``loss`` against ``func`` and rankref; one outcome per case.

    Parameters
    ----------
    func : callable
        The audited implementation (a function, an autograd Function class or its ``.apply``,
        an ``nn.Module`` class or instance), following the signature of ``convention``
        (see :mod:`rankref.crosscheck`).
    loss : {"rs", "ap", "brs", "gap", "balanced-l1", "iou-neg-sampler"}
    cases : {"all", "quick"} or list of (name, inputs)
        The whole battery (:func:`make_cases`), its first 8 cases (GAP: 9), or cases of your
        own in the same form (the snippet of a shrunk failure uses this).
    convention : {"rankref", "official"}
        ``"official"`` calls the official callables as the official heads do (rs, brs, ap, gap
        only), reports their documented differences as EXPECTED, runs cases outside their
        domain inside it (flattened, at the fixed delta, without the rows labelled -1) and
        SKIPs those that have no such variant.
    framework : {"auto", "numpy", "torch"}
    rtol, atol : float >= 0
        A value passes when ``|got - expected| <= atol + rtol |expected|`` entry by entry.
    delta : float >= 0 or None
        The battery's delta (None: 0.5, 1.0 for ap).  The cases named ``delta = ...`` keep
        their own.
    timeout : float > 0, default 120
        Seconds one case may run; past it the case is an ERROR and the run goes on.
    explore : int >= 0, default 0
        Random cases to run after the battery (:func:`explore_case`: sizes, ties, spreads,
        delta where the callable takes it); the first that fails is shrunk to a minimal input
        and reported with a runnable snippet.
    seed : int >= 0, default 0
        The seed of the explored cases.
    target : str, optional
        The ``MODULE:CALLABLE`` the snippet of a shrunk failure loads.
    save_failure : str, optional
        A ``.npz`` file to keep the shrunk failure in (inputs, outputs, settings).

    Returns
    -------
    CrosscheckReport
        Iterates over the case records; ``exit_status()`` is the command's exit status.

    Raises
    ------
    ValueError, TypeError
        Bad options (before any case runs), e.g. a convention the loss does not have, or a
        delta the official callable cannot take.  Exceptions raised by ``func`` are reported
        per case, never raised.

    Examples
    --------
    >>> import rankref
    >>> from rankref.crosscheck import crosscheck
    >>> report = crosscheck(rankref.rank_sort_loss, "rs", cases="quick")
    >>> [c["status"] for c in report][:4], report.exit_status()
    (['pass', 'pass', 'pass', 'pass'], 0)
    """
    _check_options(loss, cases, convention, framework, rtol, atol, delta, timeout, explore,
                   seed)
    if not callable(func):
        raise TypeError(f"the audited object must be callable, got {type(func).__name__}.")
    certain = True
    if framework == "auto":
        fw, why, certain = _guess_framework(func)
    else:
        fw, why = framework, None
        if fw == "torch":
            if importlib.util.find_spec("torch") is None:
                raise ValueError("framework='torch' needs torch installed.")
            importlib.import_module("torch")  # the cases pass torch tensors
    plan = _Plan(func, loss, convention, fw, why, certain)
    main_delta = DEFAULT_DELTA.get(loss) if delta is None else float(delta)
    if plan.fixed_delta is not None and delta is not None and float(delta) != plan.fixed_delta:
        raise ValueError(f"{plan.name} fixes delta at {plan.fixed_delta} under --convention "
                         f"official; --delta {delta:g} cannot be audited (drop --delta).")
    if plan.fixed_delta is not None:
        main_delta = plan.fixed_delta
    if isinstance(cases, str):
        quick = cases == "quick"
        battery, label = make_cases(loss, quick, main_delta), cases
    else:
        quick, battery, label = False, list(cases), "given"
    state = {"hints": []}
    records = [evaluate(plan, name, regime_of(name), inp, quick, rtol, atol, timeout, state)[0]
               for name, inp in battery]
    explored = None
    if explore:
        explored = _explore(plan, explore, seed, main_delta, rtol, atol, timeout, state,
                            target, save_failure)
    hints = state["hints"]
    failing = [r for r in records if r["status"] in ("fail", "error")]
    if explored is not None:
        failing += [r for r in explored["records"] if r["status"] in ("fail", "error")]
    if failing:
        for hint in (plan.official_shape, _delta_parameter_hint(plan)):
            if hint and hint not in hints:
                hints.append(hint)
    return CrosscheckReport(plan, label, main_delta, rtol, atol, timeout, records, hints,
                            explored)
