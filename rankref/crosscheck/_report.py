"""The report of a crosscheck run: :class:`CrosscheckReport` and its text form."""
import json
import textwrap

from ._conventions import MIN_CASES, STATUSES


class CrosscheckReport:
    """The outcome of :func:`crosscheck`: how the callable was called, and one record per case.

    Made by :func:`crosscheck` (not meant to be built directly).  Iterating (or indexing) a
    report gives the case records of the battery, in its order; ``len`` is the number of cases.
    Each record is a dict with the keys

    ``case`` (str)
        The case's name, e.g. ``"ties"`` or ``"delta = 0, ties"``.
    ``regime`` (str)
        The regime the case belongs to (``"trained"``, ``"precision 1"``, ``"tied groups"``
        ...; ``rankref.crosscheck.regime_of``).
    ``status`` (str)
        One of ``"pass"``, ``"fail"``, ``"error"``, ``"expected"``, ``"skipped"``
        (``rankref.crosscheck.STATUSES``).
    ``reason`` (str or None)
        Why a case is EXPECTED or SKIPPED, the first difference of a FAIL, the exception of an
        ERROR; None for a PASS.
    ``delta`` (float or None)
        The delta the case ran at (None for losses without one).
    ``note`` (str or None)
        How a case outside the official domain was run inside it instead (2-D logits
        flattened for BRS, a fixed delta, GAP rows labelled -1 dropped); None otherwise.
    ``loss_diff``, ``grad_max_diff``, ``grad_rel_diff`` (float or None)
        The largest absolute difference of the loss values, of the updates, and of the updates
        relative to rankref's largest update (for the sampler: the largest z-score of an
        inclusion frequency, and the largest ``|frequency - probability|``); None where not
        computed or not finite.
    ``seconds`` (float or None)
        How long the audited call ran.
    ``detail`` (list of str)
        The lines printed under the case in the text report (the worst entries of a FAIL, the
        traceback of an ERROR, the evidence of an EXPECTED).

    Attributes
    ----------
    loss : str
        The loss (or sampler) audited, one of ``rankref.crosscheck.LOSSES``.
    convention : str
        ``"rankref"`` or ``"official"``.
    call : str
        The call made and what it is compared with, e.g.
        ``"rank_sort_loss(logits, targets, delta) -> (ranking, sorting, grad)"``.
    delta : float or None
        The battery's delta (cases named ``"delta = ..."`` keep their own); None for losses
        without one.
    fixed_delta : bool
        True when the official callable fixes delta itself (``AP_loss``, ROG's ``GAPLoss``).
    framework : str
        ``"numpy"`` or ``"torch"``: the array type passed to the callable.
    framework_reason : str
        ``"given"``, or ``"auto: ..."`` with the reason ``framework="auto"`` chose it.
    battery : str
        ``"all"``, ``"quick"`` or ``"given"`` (a list of cases passed to :func:`crosscheck`).
    rtol, atol : float
        The tolerances: a value passes when ``|got - expected| <= atol + rtol |expected|``.
    timeout : float
        Seconds one case may run.
    cases : list of dict
        The case records above.
    hints : list of str
        Suggestions drawn from the failures (a convention or a framework that fits better).
    explore : dict or None
        The ``--explore`` run: ``cases``, ``seed``, ``counts`` (per status), ``records`` (the
        explored cases that did not pass) and ``failure`` (the first failure, shrunk: its
        ``inputs``, ``entries_before``, ``entries``, ``evaluations``, the side-by-side
        ``table`` and a runnable ``snippet``; None when every explored case passed).

    Examples
    --------
    >>> import rankref
    >>> from rankref.crosscheck import crosscheck
    >>> report = crosscheck(rankref.rank_sort_loss, "rs", cases="quick")
    >>> report.counts()
    {'pass': 8, 'fail': 0, 'error': 0, 'expected': 0, 'skipped': 0}
    >>> first = report[0]
    >>> first["case"], first["status"], first["loss_diff"]
    ('random', 'pass', 0.0)
    >>> report.regime_counts()["trained"], report.exit_status(strict=True)
    (1, 0)
    """

    def __init__(self, plan, battery, delta, rtol, atol, timeout, cases, hints, explore=None):
        self.loss = plan.loss
        self.convention = plan.convention
        self.call = plan.call
        self.delta = delta
        self.fixed_delta = plan.fixed_delta is not None
        self.framework = plan.framework
        self.framework_reason = (f"auto: {plan.auto_reason}" if plan.auto_reason else "given")
        self.battery = battery
        self.rtol, self.atol, self.timeout = rtol, atol, timeout
        self.cases = cases
        self.hints = hints
        self.explore = explore

    def __iter__(self):
        return iter(self.cases)

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, i):
        return self.cases[i]

    def counts(self):
        """``{status: number of cases}`` for every status."""
        return {s: sum(c["status"] == s for c in self.cases) for s in STATUSES}

    def cases_run(self):
        """The number of cases that ran (every status but SKIPPED)."""
        return sum(c["status"] != "skipped" for c in self.cases)

    def regime_counts(self):
        """``{regime: number of cases run}``, in the battery's order (SKIPPED cases do not
        count; a regime whose every case was SKIPPED shows 0)."""
        out = {}
        for c in self.cases:
            out[c["regime"]] = out.get(c["regime"], 0) + (c["status"] != "skipped")
        return out

    def exit_status(self, strict=False):
        """0 when no case FAILed or ERRORed and no explored case failed, else 1.

        ``strict`` also fails a run with an EXPECTED case, or in which fewer than 8 cases ran.
        """
        bad = {"fail", "error"} | ({"expected"} if strict else set())
        if any(c["status"] in bad for c in self.cases):
            return 1
        if self.explore is not None and any(
                self.explore["counts"][s] for s in bad):
            return 1
        if strict and self.cases_run() < MIN_CASES:
            return 1
        return 0

    def to_dict(self, target=None, strict=False):
        """The report as a dict of plain values (the attributes, ``counts``, ``cases_run``,
        ``regimes``, ``exit_status``, the ``target`` string and ``strict``), as ``--json``
        prints it."""
        return {"target": target, "loss": self.loss, "convention": self.convention,
                "call": self.call, "delta": self.delta, "framework": self.framework,
                "framework_reason": self.framework_reason, "battery": self.battery,
                "rtol": self.rtol, "atol": self.atol, "timeout": self.timeout,
                "strict": bool(strict), "cases": self.cases, "hints": self.hints,
                "counts": self.counts(), "cases_run": self.cases_run(),
                "regimes": self.regime_counts(), "explore": self.explore,
                "exit_status": self.exit_status(strict)}

    def to_json(self, target=None, strict=False):
        """:meth:`to_dict` as a JSON string (indented; no NaN or inf)."""
        return json.dumps(self.to_dict(target, strict), indent=2, allow_nan=False)

    def __repr__(self):
        c = self.counts()
        return (f"CrosscheckReport(loss={self.loss!r}, convention={self.convention!r}, "
                + ", ".join(f"{k}={v}" for k, v in c.items()) + ")")


def _wrap(text, indent, width=100):
    return textwrap.fill(text, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def _num(v):
    return "-" if v is None else f"{v:.2e}"


def _case_lines(r):
    lines = ["", _wrap(f"{r['status'].upper()} {r['case']}: {r['reason']}", "    ")]
    if r.get("note"):
        lines.append(_wrap(f"  run inside the official domain: {r['note']}", "    "))
    lines += [_wrap(f"  {d}", "    ") for d in r["detail"] if d != r["reason"]]
    return lines


def format_report(report, target=None, strict=False):
    """The text report of a :class:`CrosscheckReport`.

    A header naming the convention and call, delta, framework, battery and the cases run per
    regime; one row per case; then every case that did not pass with its reason and details;
    the ``--explore`` summary with its shrunk failure; the hints; a summary line with the exit
    status.

    Parameters
    ----------
    report : CrosscheckReport
        The result of :func:`crosscheck`.
    target : str, optional
        The name shown in the header (as given on the command line); by default the call's.
    strict : bool, default False
        Report the exit status of ``--strict`` (EXPECTED cases, and fewer than 8 cases run,
        fail too).

    Returns
    -------
    str

    Examples
    --------
    >>> import rankref
    >>> from rankref import crosscheck
    >>> report = crosscheck.crosscheck(rankref.rank_sort_loss, loss="rs", cases="quick")
    >>> print(crosscheck.format_report(report).splitlines()[0])
    rankref crosscheck rank_sort_loss --loss rs
    """
    loss = report.loss
    first = "max |z|" if loss == "iou-neg-sampler" else "loss diff"
    second = "max |freq-p|" if loss == "iou-neg-sampler" else "max grad diff"
    title = f"rankref crosscheck {target or report.call.split('(')[0]} --loss {loss}"
    if report.convention != "rankref":
        title += f" --convention {report.convention}"
    lines = [title, _wrap(f"  convention  {report.convention}: {report.call}", " " * 14)]
    if report.delta is not None:
        own = ("fixed by the official code; the cases at another delta run at it"
               if report.fixed_delta else "cases named 'delta = ...' use their own")
        lines.append(f"  delta       {float(report.delta)!r} ({own})")
    ran = report.cases_run()
    lines += [f"  framework   {report.framework} ({report.framework_reason})",
              _wrap(f"  battery     {report.battery}: {len(report)} cases, {ran} run; "
                    f"rtol={report.rtol:g}, atol={report.atol:g}, timeout {report.timeout:g} s "
                    f"per case" + ("; --strict: EXPECTED, or fewer than "
                                   f"{MIN_CASES} cases run, fails the run" if strict else ""),
                    " " * 14),
              _wrap("  regimes     " + ", ".join(f"{k} {v}" for k, v in
                                                 report.regime_counts().items()), " " * 14),
              ""]
    head = f"{'case':<28}{first:>11}{second:>15}{'rel grad diff':>15}  result"
    lines += [head, "-" * len(head)]
    for r in report:
        lines.append(f"{r['case']:<28}{_num(r['loss_diff']):>11}{_num(r['grad_max_diff']):>15}"
                     f"{_num(r['grad_rel_diff']):>15}  {r['status'].upper()}")
    for r in report:
        if r["status"] != "pass":
            lines += _case_lines(r)
    ex = report.explore
    if ex is not None:
        c = ex["counts"]
        lines += ["", f"explore: {ex['cases']} random cases (seed {ex['seed']}): {c['pass']} "
                      f"passed, {c['fail']} failed, {c['error']} errors, {c['expected']} "
                      f"expected, {c['skipped']} skipped"]
        for r in ex["records"]:
            if r["status"] in ("fail", "error") and ex["failure"] is not None \
                    and r["case"] == ex["failure"]["case"]:
                lines += _case_lines(r)
        fail = ex["failure"]
        if fail is not None:
            lines += ["", _wrap(f"shrunk {fail['case']} ({fail['regime']}) from "
                                f"{fail['entries_before']} to {fail['entries']} entries in "
                                f"{fail['evaluations']} runs: {fail['status'].upper()} "
                                f"{fail['reason']}", "    ")]
            lines += ["  " + ln if ln else "" for ln in fail["table"]]
            lines += ["", "  as a runnable snippet:", ""]
            lines += ["    " + ln if ln else "" for ln in fail["snippet"].splitlines()]
            if fail.get("saved"):
                lines += ["", f"  saved to {fail['saved']}"]
    if report.hints:
        lines.append("")
        lines += [_wrap(f"hint: {h}", "      ") for h in report.hints]
    c = report.counts()
    status = report.exit_status(strict)
    lines.append("")
    if strict and ran < MIN_CASES:
        lines.append(f"--strict: only {ran} cases ran, fewer than {MIN_CASES}")
    lines.append(f"{c['pass']} passed, {c['fail']} failed, {c['error']} errors, "
                 f"{c['expected']} expected, {c['skipped']} skipped: exit status {status}")
    return "\n".join(lines)
