"""The mutation suite of ``rankref crosscheck``: single-edit mutants of the official-style
stand-ins in tests/standins/, generated from their source by this test.

Every mutant that some input can tell apart from the original must make crosscheck fail
(``--convention official``, the default battery); each equivalent mutant is listed with the
reason no input tells it apart, and must still pass.  The edits are those a port gets wrong:
comparison flips, tie rules, thresholds, interpolation, eps gating, normalisation, 1% scalings.
"""
import os
import re
import shutil

import pytest

from rankref.crosscheck import crosscheck, format_report, load_callable

pytest.importorskip("torch")

HERE = os.path.dirname(os.path.abspath(__file__))
STANDINS = os.path.join(HERE, "standins")

# stand-in file, callable, loss, the function whose body is edited
TARGETS = {
    "RankSort": ("ranksort_repo.py", "RankSort", "rs", "_rank_sort"),
    "APLoss": ("ranksort_repo.py", "APLoss.apply", "ap", "_interpolated_ap"),
    "BucketedRankSort": ("brs_repo.py", "BucketedRankSort", "brs", "_bucketed_rank_sort"),
    "AP_loss": ("aploss_repo.py", "AP_loss", "ap", "AP_loss"),
    "GAPLoss": ("rog_repo.py", "GAPLoss.apply", "gap", "_gap"),
}
RAMP = "_ramp"  # the relaxed step of the module (RS, BRS, GAP)

# (id, target, function (None: the target's), old, new, equivalent: None or the reason)
MUTANTS = [
    # RankSort
    ("rs-cut-strict", "RankSort", None, "(logits >= threshold)", "(logits > threshold)", None),
    ("rs-cut-narrow", "RankSort", None, "torch.min(fg_logits) - delta",
     "torch.min(fg_logits) - 0.5 * delta", None),
    ("rs-step-tie", "RankSort", RAMP, "(u >= 0)", "(u > 0)", None),
    ("rs-ramp-offset", "RankSort", RAMP, "/ (2 * delta) + 0.5", "/ (2 * delta) + 0.505", None),
    ("rs-ranking-1pct", "RankSort", None, "ranking_error = fp / (rank_pos + fp)",
     "ranking_error = fp / (rank_pos + fp) * 1.01", None),
    ("rs-eps-threshold", "RankSort", None, "ranking_gate = fp > eps", "ranking_gate = fp > 0.5",
     None),
    ("rs-eps-small", "RankSort", None, "ranking_gate = fp > eps", "ranking_gate = fp > 1e-2",
     None),
    ("rs-eps-ge", "RankSort", None, "ranking_gate = fp > eps", "ranking_gate = fp >= eps",
     "FP is a sum of ramp values: it equals exactly 1e-10 on no float input"),
    ("rs-sorting-eps-threshold", "RankSort", None, "sorting_gate = denom > eps",
     "sorting_gate = denom > 1", None),
    ("rs-quality-tie", "RankSort", None, "(tp[None, :] >= tp[:, None]) * h_pos",
     "(tp[None, :] > tp[:, None]) * h_pos", None),
    ("rs-missorted-flip", "RankSort", None, "(tp[None, :] < tp[:, None]) * h_pos",
     "(tp[None, :] <= tp[:, None]) * h_pos", None),
    ("rs-normalisation", "RankSort", None, "grads[fg] = pos_grad / Z",
     "grads[fg] = pos_grad / (Z + 1)", None),
    ("rs-negatives-1pct", "RankSort", None, "grads[bg] = neg_grad / Z",
     "grads[bg] = neg_grad / Z * 1.01", None),
    # APLoss
    ("ap-interp-strict", "APLoss", None, "if running <= current[i]:",
     "if running < current[i]:", None),
    ("ap-interp-flip", "APLoss", None, "if running <= current[i]:",
     "if running >= current[i]:", None),
    ("ap-self-1pct", "APLoss", None, "rank_pos = 1 + h_pos.sum(1)",
     "rank_pos = 1.01 + h_pos.sum(1)", None),
    ("ap-self-kept", "APLoss", None, "h_pos.fill_diagonal_(0)", "h_pos.fill_diagonal_(0.5)",
     None),
    ("ap-cut-strict", "APLoss", None, "(logits >= threshold)", "(logits > threshold)",
     "a negative at min(fg) - delta has H = 0; APLoss has no exact step (delta = 0 is NaN)"),
    ("ap-cut-narrow", "APLoss", None, "torch.min(fg_logits) - delta",
     "torch.min(fg_logits) - 0.5 * delta", None),
    ("ap-fg-uninterpolated", "APLoss", None, "grads[fg] = -(1 - best)",
     "grads[fg] = -(1 - current)", None),
    ("ap-loss-uninterpolated", "APLoss", None, "return 1 - best.mean(), grads",
     "return 1 - current.mean(), grads", None),
    ("ap-normalisation", "APLoss", None, "grads /= Z", "grads /= (Z + 1)", None),
    ("ap-interp-weight-1pct", "APLoss", None, "weight[i] = (1 - running) / (1 - current[i])",
     "weight[i] = (1 - running) / (1 - current[i]) * 1.01", None),
    ("ap-ramp-clamp", "APLoss", None, "(2 * delta) + 0.5, min=0, max=1)\n    rank_pos",
     "(2 * delta) + 0.5, min=0, max=1.01)\n    rank_pos", None),
    # BucketedRankSort
    ("brs-step-tie", "BucketedRankSort", None, "(above_bucket >= 0)", "(above_bucket > 0)",
     None),
    ("brs-step-positive-tie", "BucketedRankSort", RAMP, "(u >= 0)", "(u > 0)", None),
    ("brs-ramp-offset", "BucketedRankSort", None, "above_bucket / (2 * delta) + 0.5",
     "above_bucket / (2 * delta) + 0.505", None),
    ("brs-fp-guard", "BucketedRankSort", None, "torch.where(fp == 0, torch.ones_like(fp), fp)",
     "torch.where(fp == 0, 2 * torch.ones_like(fp), fp)",
     "where FP = 0 every bucket term multiplies a zero relation: the guard's value never shows"),
    ("brs-sorting-gate", "BucketedRankSort", None, "sorting_error * (denom != 0)",
     "sorting_error * (denom > 1)", None),
    ("brs-cut-strict", "BucketedRankSort", None, "x[neg] >= threshold", "x[neg] > threshold",
     None),
    ("brs-normalisation", "BucketedRankSort", None, "grads / Z", "grads / (Z + 1)", None),
    ("brs-positives-1pct", "BucketedRankSort", None, "pos_grad = -ranking_error",
     "pos_grad = -ranking_error * 1.01", None),
    ("brs-buckets-1pct", "BucketedRankSort", None, "(share @ h_bucket)[bucket]",
     "(share @ h_bucket)[bucket] * 1.01", None),
    ("brs-prototype-max", "BucketedRankSort", None,
     "torch.bincount(bucket, weights=x[members]) / sizes.clamp(min=1)",
     "torch.zeros(sizes.numel(), dtype=torch.float64).scatter_reduce(0, bucket, x[members], "
     "'amax', include_self=False)", None),
    ("brs-quality-tie", "BucketedRankSort", None, "(tp[None, :] >= tp[:, None]) * h_pos",
     "(tp[None, :] > tp[:, None]) * h_pos", None),
    ("brs-ranking-1pct", "BucketedRankSort", None, "ranking_error = fp / (rank_pos + fp)",
     "ranking_error = fp / (rank_pos + fp) * 1.01", None),
    ("brs-negatives-first", "BucketedRankSort", None, "ids = torch.cat((pos, relevant))",
     "ids = torch.cat((relevant, pos))",
     "another placement of the tied negatives (all above, rankref's own): the official sort is "
     "unstable, so every placement is the documented behaviour"),
    # AP_loss
    ("aploss-interp-strict", "AP_loss", None, "if running <= current[i]:",
     "if running < current[i]:", None),
    ("aploss-self-half", "AP_loss", None, "h_pos.sum(1) + 0.5", "h_pos.sum(1) + 0.6", None),
    ("aploss-cut-strict", "AP_loss", None, "(x >= threshold)", "(x > threshold)",
     "a negative at min(fg) - 1 has H = 0 (delta is fixed at 1)"),
    ("aploss-cut-narrow", "AP_loss", None, "torch.min(xp) - delta", "torch.min(xp) - 0.5 * delta",
     None),
    ("aploss-prec-uninterpolated", "AP_loss", None, "best[i] = running", "best[i] = current[i]",
     None),
    ("aploss-positives-1pct", "AP_loss", None, "out[fg] = -(1 - best)",
     "out[fg] = -(1 - best) * 1.01", None),
    ("aploss-normalisation", "AP_loss", None, "out /= max(Z, 1)", "out /= max(Z + 1, 1)", None),
    ("aploss-interp-weight-1pct", "AP_loss", None, "weight[i] = (1 - running) / (1 - current[i])",
     "weight[i] = (1 - running) / (1 - current[i]) * 1.01", None),
    ("aploss-ramp-offset", "AP_loss", None, "(xn[None, :] - xp[:, None]) / (2 * delta) + 0.5",
     "(xn[None, :] - xp[:, None]) / (2 * delta) + 0.51", None),
    ("aploss-metric-1pct", "AP_loss", None, "metric = best.sum(0, keepdim=True) / max(Z, 1)",
     "metric = best.sum(0, keepdim=True) / max(Z, 1) * 1.01", None),
    ("aploss-empty-guard", "AP_loss", None, "if torch.max(targets) <= 0:",
     "if torch.max(targets) < 0:", None),
    # GAPLoss
    ("gap-step-tie", "GAPLoss", RAMP, "(u >= 0)", "(u > 0)",
     "the exact step never runs: GAPLoss fixes delta at 0.5 (six gradients, no delta)"),
    ("gap-cut-strict", "GAPLoss", None, "(scores >= threshold)", "(scores > threshold)",
     "a negative at min(pos) - 0.5 has H = 0 (delta is fixed at 0.5)"),
    ("gap-minus-one-column", "GAPLoss", None, "torch.remainder(labels, C)",
     "labels.clamp(min=0)",
     "rows labelled -1 never reach the official call: the head has none, and crosscheck drops "
     "them"),
    ("gap-cut-narrow", "GAPLoss", None, "torch.min(xp) - delta", "torch.min(xp) - 0.5 * delta",
     None),
    ("gap-eps-threshold", "GAPLoss", None, "gate = fp > eps", "gate = fp > 0.5", None),
    ("gap-positives-1pct", "GAPLoss", None, "-(1 - rank_pos / rank)",
     "-(1 - rank_pos / rank) * 1.01", None),
    ("gap-negatives-1pct", "GAPLoss", None, "* gate[:, None]).sum(0)",
     "* gate[:, None]).sum(0) * 1.01", None),
    ("gap-weight-normalisation", "GAPLoss", None, "w / (w.sum() + 1e-9) * C",
     "w / (w.sum() + 1e-9) * (C + 1)", None),
    ("gap-normalisation", "GAPLoss", None, "(xp.numel() * len(classes))",
     "(xp.numel() * len(classes) + 1)", None),
    ("gap-loss-1pct", "GAPLoss", None, "(fp / rank).mean() / len(classes)",
     "(fp / rank).mean() / len(classes) * 1.01", None),
    ("gap-ramp-offset", "GAPLoss", RAMP, "/ (2 * delta) + 0.5", "/ (2 * delta) + 0.505", None),
    ("gap-background-class", "GAPLoss", None, "if int(m) != C]", "if int(m) != C + 1]", None),
    ("gap-gamma-1pct", "GAPLoss", None, "** gamma", "** (gamma * 1.01)", None),
    ("gap-gamma-dropped", "GAPLoss", None, "** gamma", "** 1.0", None),
    ("gap-eps-small", "GAPLoss", None, "gate = fp > eps", "gate = fp > 1e-2", None),
]


def _function_span(source, name):
    """(start, end) of the top-level function ``name`` in ``source``."""
    match = re.search(rf"^def {re.escape(name)}\(", source, re.M)
    assert match, f"no function {name} in the stand-in"
    after = re.search(r"^(def |class )", source[match.end():], re.M)
    return match.start(), (match.end() + after.start()) if after else len(source)


def mutate(source, function, old, new):
    """``source`` with the one occurrence of ``old`` inside ``function`` replaced."""
    start, end = _function_span(source, function)
    body = source[start:end]
    assert body.count(old) == 1, f"{old!r} occurs {body.count(old)} times in {function}"
    return source[:start] + body.replace(old, new) + source[end:]


def build(tmp_path, mid):
    _, target, function, old, new, _ = next(m for m in MUTANTS if m[0] == mid)
    filename, name, loss, own = TARGETS[target]
    folder = tmp_path / mid
    folder.mkdir()
    for other in os.listdir(STANDINS):  # siblings it imports (brs_repo uses ranksort_repo)
        if other.endswith(".py"):
            shutil.copy(os.path.join(STANDINS, other), folder / other)
    source = open(os.path.join(STANDINS, filename)).read()
    mutated = mutate(source, function or own, old, new)
    assert mutated != source
    (folder / filename).write_text(mutated)
    return load_callable(f"{folder / filename}:{name}"), loss


def test_every_standin_has_at_least_10_mutants():
    for target in TARGETS:
        assert sum(m[1] == target for m in MUTANTS) >= 10, target
    assert len({m[0] for m in MUTANTS}) == len(MUTANTS)


@pytest.mark.parametrize("mid", [m[0] for m in MUTANTS])
def test_mutant_is_caught_unless_equivalent(tmp_path, mid):
    equivalent = next(m[5] for m in MUTANTS if m[0] == mid)
    func, loss = build(tmp_path, mid)
    report = crosscheck(func, loss, convention="official")
    if equivalent:
        assert report.exit_status() == 0, format_report(report)
    else:
        assert report.exit_status() == 1, format_report(report)
        assert any(r["status"] in ("fail", "error") for r in report)


@pytest.mark.parametrize("delta", [None, 0.0])
def test_brs_tie_rule_mutant_fails_at_default_delta_and_at_zero(tmp_path, delta):
    """`> 0` instead of `>= 0` (H_0(0) = 0) must FAIL: the placement read from the update does
    not explain the difference."""
    func, loss = build(tmp_path, "brs-step-tie")
    report = crosscheck(func, loss, convention="official", delta=delta)
    assert report.exit_status() == 1
    failed = [r for r in report if r["status"] == "fail"]
    assert "delta = 0, ties" in {r["case"] for r in failed}
    tied = next(r for r in failed if r["case"] == "delta = 0, ties")
    assert any("does not explain the difference" in d for d in tied["detail"])
    assert not any(r["status"] == "expected" and r["delta"] == 0 for r in report)


def test_ap_interpolation_mutant_fails_on_precision_1_positives(tmp_path):
    func, loss = build(tmp_path, "ap-interp-strict")
    report = crosscheck(func, loss, convention="official")
    statuses = {r["case"]: r["status"] for r in report}
    assert statuses["precision-1 positives"] == "fail"
    assert statuses["all positives above"] == "fail"
    assert statuses["random"] == "pass"  # no positive has precision 1 there
