"""rankref crosscheck: the battery, the official conventions, outcomes, loading, the command line.

The official-style stand-ins in tests/standins/ have the official signatures, return layouts and
failure modes, and compute through rankref's dense oracle.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import rankref
from rankref.cli import main
from rankref.crosscheck import (
    STATUSES,
    brs_with_placement,
    crosscheck,
    format_report,
    load_callable,
    make_cases,
    regime_of,
)

HERE = os.path.dirname(os.path.abspath(__file__))
STANDINS = os.path.join(HERE, "standins")


def standin(spec):
    return os.path.join(STANDINS, spec)


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr); stdout with its wrapped lines joined (single spaces)."""
    code = main(["crosscheck", *argv])
    out = capsys.readouterr()
    text = "\n".join(" ".join(line.split()) if not line.startswith("---") else line
                     for line in out.out.replace("\n    ", " ").splitlines())
    return code, text, out.err


def run_json(capsys, *argv):
    code = main(["crosscheck", *argv, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["exit_status"] == code
    return code, data, {c["case"]: c["status"] for c in data["cases"]}


# ------------------------------------------------------------------ rankref convention

@pytest.mark.parametrize("target, loss", [
    ("rankref.torch:rank_sort_loss", "rs"),
    ("rankref.torch:RankSortLoss", "rs"),
    ("rankref.torch:ap_loss", "ap"),
    ("rankref.torch:gap_loss", "gap"),
    ("rankref.torch:balanced_l1_loss", "balanced-l1"),
    ("rankref.torch:iou_balanced_neg_sample", "iou-neg-sampler"),
    ("rankref:rank_sort_loss", "rs"),
    ("rankref:ap_loss", "ap"),
    ("rankref:gap_loss", "gap"),
    ("rankref:balanced_l1_loss", "balanced-l1"),
    ("rankref:iou_balanced_neg_sample", "iou-neg-sampler"),
])
def test_crosscheck_rankref_itself_passes(target, loss):
    if target.startswith("rankref.torch"):
        pytest.importorskip("torch")
    res = crosscheck(load_callable(target), loss, cases="quick" if "sampler" in loss else "all")
    assert [r["status"] for r in res] == ["pass"] * len(res), format_report(res, target)
    assert len(res) >= 3 and res.exit_status() == 0 and res.exit_status(strict=True) == 0
    assert res.framework == ("torch" if target.startswith("rankref.torch") else "numpy")


def test_battery_covers_extreme_delta_and_ignored_labels():
    rs = dict(make_cases("rs"))
    assert rs["delta = 0, ties"]["delta"] == 0.0 and rs["delta = 4"]["delta"] == 4.0
    assert rs["random"]["delta"] == 0.5 and rs["2-D [anchors, classes]"]["x"].ndim == 2
    x, t = rs["ties"]["x"], rs["ties"]["t"]
    assert np.isin(x[t == 0], x[t > 0]).any()  # negatives tied with positives
    assert make_cases("ap", delta=0.25)[0][1]["delta"] == 0.25
    gap = dict(make_cases("gap"))
    assert (gap["ignored labels"]["labels"] == -1).any()
    assert all((v["labels"] >= 0).all() for k, v in gap.items() if k != "ignored labels")
    assert gap["delta = 2"]["delta"] == 2.0
    assert [n for n, _ in make_cases("rs", quick=True)] == [
        "random", "ties", "single positive", "zero positives", "trained, +4",
        "precision-1 positives", "all positives above", "tied groups"]
    for loss in ("rs", "brs", "ap", "gap", "balanced-l1", "iou-neg-sampler"):
        assert len(make_cases(loss)) >= 8 and len(make_cases(loss, quick=True)) >= 8, loss


def test_battery_regimes():
    """The regimes the issue asks for, each built as described (values, not just names)."""
    rs = dict(make_cases("rs"))
    for shift in (2, 4, 6):  # a trained detector: positives shifted up
        x, t = rs[f"trained, +{shift}"]["x"], rs[f"trained, +{shift}"]["t"]
        assert x[t > 0].mean() - x[t == 0].mean() == pytest.approx(shift, abs=0.5)
    x, t, d = (rs["precision-1 positives"][k] for k in ("x", "t", "delta"))
    top = x[t > 0] > x[t == 0].max() + d  # precision 1 ...
    assert 2 <= top.sum() < (t > 0).sum()  # ... beside positives among relevant negatives
    x, t = rs["all positives above"]["x"], rs["all positives above"]["t"]
    assert x[t > 0].min() > x[t == 0].max()
    t = rs["quality ties"]["t"]
    assert np.unique(t[t > 0]).size < (t > 0).sum()
    x, t = rs["tied groups"]["x"], rs["tied groups"]["t"]
    values, counts = np.unique(x[t > 0], return_counts=True)
    assert (counts >= 4).sum() >= 8 and np.isin(x[t == 0], values).any()
    x, t = rs["1 positive, 1e5 negatives"]["x"], rs["1 positive, 1e5 negatives"]["t"]
    assert (t > 0).sum() == 1 and (t == 0).sum() >= 100_000
    ap = dict(make_cases("ap"))
    x, t = ap["quality ties"]["x"], ap["quality ties"]["t"]
    assert np.unique(x[t > 0]).size < (t > 0).sum()  # AP: logit ties among positives
    assert regime_of("trained, +2") == "trained" and regime_of("delta = 4") == "extreme delta"
    # deterministic: the same battery twice
    again = dict(make_cases("rs"))
    assert all(np.array_equal(again[k]["x"], rs[k]["x"]) for k in rs)


def test_crosscheck_brs_method():
    res = crosscheck(lambda x, t, d: rankref.rank_sort_loss(x, t, d, "brs"), "brs")
    assert [r["status"] for r in res] == ["pass"] * len(res)
    res = crosscheck(lambda x, t, d: rankref.rank_sort_loss(x, t, d, "bucketed"), "brs")
    assert any(r["status"] == "fail" for r in res)  # exact != BRS at delta = 0.5


def test_crosscheck_catches_wrong_self_term(capsys):
    code, out, _ = run_cli(capsys, f"{HERE}/_wrong_rs.py:rank_sort_self_one", "--loss", "rs")
    assert code == 1
    assert "FAIL random: ranking loss: got" in out
    assert "entries differ; [" in out and "expected" in out  # the readable diff
    assert out.rstrip().endswith("exit status 1")


def test_wrong_return_layout_is_a_clear_error():
    torch = pytest.importorskip("torch")

    def one_output(logits, targets, delta):
        return (logits * 0).sum()

    res = crosscheck(one_output, "rs", cases="quick", framework="torch")
    assert res[0]["status"] == "error"
    assert res[0]["reason"] == ("TypeError: one_output returned Tensor; expected (ranking, "
                                "sorting)")
    assert torch is not None


def test_crosscheck_reports_crashes_per_case():
    res = crosscheck(load_callable(f"{HERE}/_wrong_rs.py:broken"), "rs", cases="quick")
    assert [r["status"] for r in res] == ["error"] * len(res)
    assert res[0]["reason"] == "RuntimeError: boom"
    assert res.exit_status() == 1


def test_crosscheck_against_the_literal_official_loop():
    """tests/_official.py transcribes the official RankSort loop in float32 NumPy: everything
    passes except zero positives, where it raises as the official code does."""
    sys.path.insert(0, HERE)
    try:
        from _official import official_rank_sort
    finally:
        sys.path.remove(HERE)
    res = crosscheck(official_rank_sort, "rs", convention="official")
    statuses = {r["case"]: r["status"] for r in res}
    assert statuses.pop("zero positives") == "expected"
    assert set(statuses.values()) == {"pass"}
    assert "raises with no positive" in res[3]["reason"]
    assert "`threshold = fg_logits.min() - np.float32(delta)`" in res[3]["reason"]


# ------------------------------------------------------------------ the official callables

OFFICIAL = {
    "RankSort": ("ranksort_repo.py:RankSort", "rs", {"zero positives": "expected"}),
    "RankSort.apply": ("ranksort_repo.py:RankSort.apply", "rs", {"zero positives": "expected"}),
    "APLoss.apply": ("ranksort_repo.py:APLoss.apply", "ap",
                     {"zero positives": "expected", "delta = 0, ties": "expected"}),
    "BucketedRankSort": ("brs_repo.py:BucketedRankSort", "brs",
                         {"ties": "expected", "tied groups": "expected",
                          "float16-rounded": "expected", "delta = 0, ties": "expected"}),
    "APLoss.apply (BRS repository)": ("brs_repo.py:APLoss.apply", "ap",
                                      {"delta = 0, ties": "expected"}),
    "AP_loss": ("aploss_repo.py:AP_loss", "ap", {}),
    "GAPLoss.apply": ("rog_repo.py:GAPLoss.apply", "gap", {"zero positives": "skipped"}),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_standin_exits_0_with_its_expected_and_skipped_cases(capsys, name):
    pytest.importorskip("torch")
    spec, loss, special = OFFICIAL[name]
    code, data, statuses = run_json(capsys, standin(spec), "--loss", loss,
                                    "--convention", "official")
    assert code == 0
    assert statuses == {case: special.get(case, "pass") for case in statuses}
    assert set(special) <= set(statuses)
    assert data["convention"] == "official" and data["framework"] == "torch"
    for case in data["cases"]:
        assert case["status"] in STATUSES
        assert (case["reason"] is None) == (case["status"] == "pass")
    assert data["counts"]["expected"] == sum(v == "expected" for v in special.values())
    assert data["cases_run"] >= 8 and sum(data["regimes"].values()) == data["cases_run"]
    # --strict fails a run with EXPECTED cases, and only those
    code, out, _ = run_cli(capsys, standin(spec), "--loss", loss, "--convention", "official",
                           "--strict")
    assert code == (1 if "expected" in special.values() else 0)


def test_official_domain_cases_run_inside_it(capsys):
    """Cases outside an official domain run inside it: 2-D flattened for BRS, the fixed delta of
    AP_loss and GAPLoss, GAP rows labelled -1 dropped; only a GAP batch without foreground is
    SKIPPED."""
    pytest.importorskip("torch")
    _, data, _ = run_json(capsys, standin("brs_repo.py:BucketedRankSort"), "--loss", "brs",
                          "--convention", "official")
    two_d = next(c for c in data["cases"] if c["case"] == "2-D [anchors, classes]")
    assert two_d["status"] == "pass" and "flattened to 1-D" in two_d["note"]
    _, data, _ = run_json(capsys, standin("aploss_repo.py:AP_loss"), "--loss", "ap",
                          "--convention", "official")
    zero = next(c for c in data["cases"] if c["case"] == "delta = 0, ties")
    assert zero["status"] == "pass" and zero["delta"] == 1.0 and "fixes delta" in zero["note"]
    _, data, _ = run_json(capsys, standin("rog_repo.py:GAPLoss.apply"), "--loss", "gap",
                          "--convention", "official")
    ignored = next(c for c in data["cases"] if c["case"] == "ignored labels")
    assert ignored["status"] == "pass" and "rows labelled -1 dropped" in ignored["note"]
    assert data["regimes"]["zero positives"] == 0 and data["regimes"]["extreme delta"] == 2


def test_brs_repository_rank_sort_takes_delta_in_loss_weight(capsys):
    """The BRS repository's RankSort.forward(ctx, logits, targets, loss_weight=1, delta_RS=0.5):
    delta lands in loss_weight, so the cases at another delta FAIL, with a hint; with no
    positive it returns zeros (PASS)."""
    pytest.importorskip("torch")
    code, data, statuses = run_json(capsys, standin("brs_repo.py:RankSort"), "--loss", "rs",
                                    "--convention", "official")
    assert code == 1
    assert {k for k, v in statuses.items() if v != "pass"} == {"delta = 0, ties", "delta = 4"}
    assert statuses["zero positives"] == "pass"
    assert any("third parameter of RankSort.apply is `loss_weight`, not delta" in h
               for h in data["hints"])


def test_official_report_text_names_the_settings_and_reasons(capsys):
    pytest.importorskip("torch")
    code, out, _ = run_cli(capsys, standin("brs_repo.py:BucketedRankSort"), "--loss", "brs",
                           "--convention", "official")
    assert code == 0
    assert "--loss brs --convention official" in out.splitlines()[0]
    assert "convention official: BucketedRankSort.apply(logits, targets, delta)" in out
    assert "1-D float32 logits" in out
    assert "delta 0.5 (cases named 'delta = ...' use their own)" in out
    assert "framework torch (auto: BucketedRankSort is an autograd Function class)" in out
    assert "battery all: 18 cases, 18 run" in out
    assert "regimes random 1, ties 1, single positive 1, zero positives 1, trained 3," in out
    assert "EXPECTED ties: official BucketedRankSort sorts with an unstable sort: its update " \
           "places 0 of the" in out
    assert "Rebuilt with that placement (each tied negative one ulp up or down), the " \
           "reference agrees" in out
    assert out.rstrip().endswith(
        "14 passed, 0 failed, 0 errors, 4 expected, 0 skipped: exit status 0")


def test_official_zero_positive_reason_shows_the_exception(capsys):
    pytest.importorskip("torch")
    code, data, _ = run_json(capsys, standin("ranksort_repo.py:RankSort"), "--loss", "rs",
                             "--convention", "official", "--cases", "quick")
    zero = data["cases"][3]
    assert code == 0 and zero["status"] == "expected"
    assert zero["reason"].startswith(
        "official RankSort raises with no positive: torch.min of an empty tensor in its "
        "relevance cut (line ")
    assert "of ranksort_repo.py: `threshold = torch.min(fg_logits) - delta`)" in zero["reason"]
    assert "numel() == 0" in zero["detail"][0]


def test_zero_positive_expected_only_for_the_documented_failure(tmp_path):
    """An empty-tensor error anywhere else (another line, another exception) is an ERROR."""
    torch = pytest.importorskip("torch")

    class EmptyElsewhere(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, targets, delta_RS=0.5, eps=1e-10):
            fg = targets > 0
            if not fg.any():
                torch.max(logits[fg])  # not the relevance cut
            raise AssertionError("not reached on these cases")

        @staticmethod
        def backward(ctx, g1, g2):
            return None, None, None, None

    res = crosscheck(EmptyElsewhere, "rs", convention="official",
                     cases=[c for c in make_cases("rs") if c[0] == "zero positives"])
    assert res[0]["status"] == "error" and "numel() == 0" in res[0]["reason"]

    def numpy_empty(logits, targets, delta):
        raise ValueError("zero-size array to reduction operation minimum which has no identity")

    res = crosscheck(numpy_empty, "rs", convention="official",
                     cases=[c for c in make_cases("rs") if c[0] == "zero positives"])
    assert res[0]["status"] == "error"


def test_official_gap_compares_unweighted_error_and_lam_times_update():
    torch = pytest.importorskip("torch")
    inp = dict(make_cases("gap"))["random"]
    s, y, counts = inp["scores"], inp["labels"], inp["counts"]
    ref = rankref.gap_loss(s, y, counts, 0.5)
    assert abs(ref.loss - ref.ranking_error) > 1e-3  # the two values really differ

    class WeightedValue(torch.autograd.Function):  # returns the weighted loss instead
        @staticmethod
        def forward(ctx, scores, labels, num_samples, num_classes, gamma, lam):
            n = labels.numel()
            r = rankref.gap_loss(scores.detach().numpy().reshape(n, num_classes), labels.numpy(),
                                 num_samples.numpy(), 0.5, gamma)
            ctx.save_for_backward(torch.from_numpy(lam * r.grad.reshape(-1)))
            return torch.tensor(r.loss)

        @staticmethod
        def backward(ctx, g):
            return ctx.saved_tensors[0] * g, None, None, None, None, None

    res = crosscheck(WeightedValue, "gap", cases="quick", convention="official")
    assert res[0]["status"] == "fail" and "ranking error (unweighted)" in res[0]["reason"]


def test_brs_placement_reference_matches_rankref():
    """brs_with_placement with every tied negative above is rank_sort_loss(method="brs"); with
    the tied negatives below, it is what a stable sort with the positives first gives."""
    for name, inp in make_cases("brs"):
        x, t, d = inp["x"].reshape(-1), inp["t"].reshape(-1), inp["delta"]
        if not (t > 0).any() or x.size > 10_000:
            continue
        ref = rankref.rank_sort_loss(x, t, d, "brs")
        rl, sl, g = brs_with_placement(x, t, d, np.zeros(x.size, np.int64))
        np.testing.assert_allclose(g, ref.grad, rtol=1e-5, atol=1e-9, err_msg=name)
        assert rl == pytest.approx(ref.ranking_loss, rel=1e-9)
        assert sl == pytest.approx(ref.sorting_loss, rel=1e-9)
    # a negative tied with the positive at 1: above it, a false positive (H_0(0) = 1) ...
    x, t = np.array([1.0, 1.0, 0.5, 0.7]), np.array([1.0, 0.0, 1.0, 0.0])
    assert brs_with_placement(x, t, 0.0, [0, 0, 0, 0])[0] == 0.5
    # ... below it, it shares a bucket with the 0.7 negative: mean 0.85, below the positive
    assert brs_with_placement(x, t, 0.0, [0, 1, 0, 0])[0] == 0.25


def test_strict_fails_under_8_cases():
    res = crosscheck(rankref.rank_sort_loss, "rs", cases=make_cases("rs")[:7])
    assert res.exit_status() == 0 and res.exit_status(strict=True) == 1
    assert "--strict: only 7 cases ran, fewer than 8" in format_report(res, strict=True)
    res = crosscheck(rankref.rank_sort_loss, "rs", cases=make_cases("rs")[:8])
    assert res.exit_status(strict=True) == 0


# ------------------------------------------------------------------ hints

def test_official_layout_under_rankref_convention_hints(capsys):
    pytest.importorskip("torch")
    code, out, _ = run_cli(capsys, standin("ranksort_repo.py:RankSort"), "--loss", "rs",
                           "--cases", "quick")
    assert code == 1
    assert ("hint: this looks like the official gradient layout; try `--convention official`"
            in out)


def test_rankref_layout_under_official_convention_hints():
    pytest.importorskip("torch")
    res = crosscheck(load_callable("rankref.torch:rank_sort_loss"), "rs", cases="quick",
                     convention="official")
    assert res[0]["status"] == "fail"
    assert any("drop `--convention official`" in h for h in res.hints)


def test_ap_loss_form_under_rankref_convention_hints():
    pytest.importorskip("torch")
    res = crosscheck(load_callable(standin("aploss_repo.py:AP_loss")), "ap", cases="quick")
    assert {r["status"] for r in res} == {"error"}
    assert any("AP_loss(logits, targets)" in h and "--convention official" in h
               for h in res.hints)


def test_gap_official_form_under_rankref_convention_hints():
    pytest.importorskip("torch")
    res = crosscheck(load_callable(standin("rog_repo.py:GAPLoss")), "gap", cases="quick")
    assert {r["status"] for r in res} == {"error"}
    assert any("ROG's GAPLoss.apply" in h and "--convention official" in h for h in res.hints)
    # a clean reason, the torch error kept in the detail
    assert res[0]["reason"].startswith("GAPLoss.apply has an official signature, which the "
                                       "rankref convention does not call (see the hint)")


# ------------------------------------------------------------------ framework detection

def test_framework_detection():
    torch = pytest.importorskip("torch")
    from rankref.crosscheck import _guess_framework

    ranksort = load_callable(standin("ranksort_repo.py:RankSort"))
    assert _guess_framework(ranksort)[0] == "torch"
    assert _guess_framework(ranksort.apply) == (
        "torch", "the .apply of the autograd Function RankSort", True)
    assert _guess_framework(rankref.torch.RankSortLoss)[0] == "torch"
    assert _guess_framework(rankref.torch.RankSortLoss())[0] == "torch"
    fw, why, certain = _guess_framework(load_callable(standin("aploss_repo.py:AP_loss")))
    assert fw == "torch" and "uses torch" in why and not certain
    assert _guess_framework(rankref.rank_sort_loss)[0] == "numpy"
    assert _guess_framework(lambda x, t, d: rankref.rank_sort_loss(x, t, d))[0] == "numpy"
    assert _guess_framework(torch.nn.functional.smooth_l1_loss)[0] == "torch"
    # a module that uses torch through rankref.torch only
    module = type(sys)("_xcheck_uses_rankref_torch")
    exec("import rankref.torch as rt\n"
         "def rs(x, t, d):\n    return rt.rank_sort_loss(x, t, d)\n", vars(module))
    sys.modules[module.__name__] = module
    try:
        assert _guess_framework(module.rs)[:2] == (
            "torch", "a callable whose module (_xcheck_uses_rankref_torch) uses torch")
        assert crosscheck(module.rs, "rs", cases="quick").exit_status() == 0
    finally:
        del sys.modules[module.__name__]


def test_wrong_framework_guess_says_so(capsys):
    pytest.importorskip("torch")
    target = standin("numpy_in_torch_module.py:rank_sort")
    code, out, _ = run_cli(capsys, target, "--loss", "rs", "--cases", "quick")
    assert code == 1
    assert "framework torch (auto: a callable whose module" in out
    assert "fails on torch tensors but runs on NumPy arrays: pass `--framework numpy`" in out
    code, out, _ = run_cli(capsys, target, "--loss", "rs", "--cases", "quick",
                           "--framework", "numpy")
    assert code == 0 and "framework numpy (given)" in out


# ------------------------------------------------------------------ timeouts

def test_timeout_makes_one_case_an_error_and_the_run_goes_on():
    hang = load_callable(f"{HERE}/_wrong_rs.py:hangs_on_single_positive")
    # (60 s per case: the passing cases finish well within it on a busy machine; the
    # watchdogs below are minutes, never a speed requirement)
    start = time.perf_counter()
    res = crosscheck(hang, "rs", cases="quick", timeout=60.0)
    assert time.perf_counter() - start < 600
    statuses = {r["case"]: r["status"] for r in res}
    assert statuses == {name: "error" if name == "single positive" else "pass"
                        for name, _ in make_cases("rs", quick=True)}
    assert "ran longer than the timeout (60 s)" in res[2]["reason"]
    deadline = time.time() + 300
    while any(t.name == "rankref-crosscheck-case" for t in threading.enumerate()):
        assert time.time() < deadline, "the stuck case was not stopped"
        time.sleep(0.05)


# ------------------------------------------------------------------ loading

def test_load_callable_forms():
    path_before = list(sys.path)
    assert load_callable("rankref:rank_sort_loss") is rankref.rank_sort_loss
    assert sys.path == path_before  # the folder is put first for the import only
    assert load_callable("rankref.crosscheck:CrosscheckReport.exit_status").__name__ == \
        "exit_status"
    f = load_callable(f"{HERE}/_wrong_rs.py:rank_sort_self_one")
    assert f.__name__ == "rank_sort_self_one" and sys.path == path_before
    with pytest.raises(ValueError, match="expected MODULE:CALLABLE"):
        load_callable("rankref.rank_sort_loss")
    with pytest.raises(ValueError, match="no such file"):
        load_callable(f"{HERE}/does_not_exist.py:f")
    with pytest.raises(TypeError, match="must be a string"):
        load_callable(None)


def test_missing_name_lists_the_callables():
    with pytest.raises(ValueError) as info:
        load_callable(f"{HERE}/_wrong_rs.py:rank_sort_self_on")
    msg = str(info.value)
    assert "has no attribute 'rank_sort_self_on'" in msg
    assert "Did you mean 'rank_sort_self_one'?" in msg
    assert "Its callables: broken, hangs_on_single_positive, rank_sort_self_one." in msg
    with pytest.raises(ValueError, match="Its callables: .*rank_sort_loss"):
        load_callable("rankref:no_such_loss")


def _package(tmp_path, source, name="mypkg"):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(standin(source), pkg / "losses.py")
    return tmp_path


def test_module_form_resolves_from_the_current_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    _package(tmp_path, "ranksort_repo.py", "xcheck_pkg_inproc")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    path_before = list(sys.path)
    try:
        code, out, _ = run_cli(capsys, "xcheck_pkg_inproc.losses:APLoss.apply", "--loss", "ap",
                               "--convention", "official", "--cases", "quick")
    finally:
        for name in [m for m in sys.modules if m.startswith("xcheck_pkg_inproc")]:
            del sys.modules[name]
    assert code == 0, out
    assert sys.path == path_before  # restored after the run
    assert "EXPECTED zero positives: official APLoss raises with no positive" in out


def _console_script():
    script = shutil.which("rankref", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the rankref console script is not installed next to this Python")
    return script


def test_console_script_module_form_next_to_the_package(tmp_path):
    pytest.importorskip("torch")
    _package(tmp_path, "ranksort_repo.py")
    out = subprocess.run([_console_script(), "crosscheck", "mypkg.losses:RankSort", "--loss",
                          "rs", "--convention", "official", "--cases", "quick"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "EXPECTED zero positives" in out.stdout
    out = subprocess.run([_console_script(), "crosscheck", "mypkg.losses:RankSrt", "--loss",
                          "rs"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert "Did you mean 'RankSort'? Its callables: APLoss, RankSort." in out.stderr


def test_crosscheck_help_shows_both_forms():
    out = subprocess.run([sys.executable, "-m", "rankref", "crosscheck", "--help"],
                         capture_output=True, text=True, cwd=HERE)
    assert out.returncode == 0
    text = out.stdout
    assert "MODULE:CALLABLE" in text and "path/to/file.py:NAME" in text
    assert "--convention" in text and "--timeout" in text and "--strict" in text
    assert "EXPECTED" in text and "SKIPPED" in text
    assert "--explore N" in text and "--seed S" in text and "--save-failure FILE.npz" in text
    # every exit-2 case is listed
    for words in ("unknown --loss", "cannot be found", "a NAME the module does not have",
                  "not callable", "a convention the loss does not have", "--delta below 0",
                  "--delta for a loss without one", "official callable cannot take",
                  "--timeout not above 0", "--explore with iou-neg-sampler",
                  "--save-failure without", "not ending in .npz"):
        assert words in " ".join(text.split()), words


# ------------------------------------------------------------------ bad input: exit 2

def test_unknown_loss_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["crosscheck", "rankref:rank_sort_loss", "--loss", "rank-sort"])
    assert info.value.code == 2
    assert "invalid choice: 'rank-sort'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["no_such_pkg_xyz.losses:RankSort", "--loss", "rs"],
     "no module named 'no_such_pkg_xyz' (looked in the current folder"),
    (["rankref:RankSort", "--loss", "rs"], "has no attribute 'RankSort'"),
    (["rankref:balanced_l1_loss", "--loss", "balanced-l1", "--convention", "official"],
     "--loss balanced-l1 has no 'official' convention (it has: rankref)"),
    (["rankref:iou_balanced_neg_sample", "--loss", "iou-neg-sampler", "--convention",
      "official"], "has no 'official' convention"),
    (["rankref:rank_sort_loss", "--loss", "rs", "--timeout", "0"],
     "timeout must be a finite number of seconds > 0"),
    (["rankref:rank_sort_loss", "--loss", "rs", "--delta", "-1"], "delta must be a finite"),
    (["rankref:balanced_l1_loss", "--loss", "balanced-l1", "--delta", "0.5"],
     "takes no delta"),
    (["rankref:__version__", "--loss", "rs"], "must be callable"),
    (["rankref:rank_sort_loss", "--loss", "rs", "--save-failure", "f.npz"],
     "--save-failure keeps the shrunk failure of --explore"),
    (["rankref:rank_sort_loss", "--loss", "rs", "--explore", "2", "--save-failure", "f.txt"],
     "takes a FILE.npz"),
    (["rankref:rank_sort_loss", "--loss", "rs", "--explore", "2", "--save-failure",
      "/no/such/folder/f.npz"], "no such folder"),
    (["rankref:iou_balanced_neg_sample", "--loss", "iou-neg-sampler", "--explore", "3"],
     "--explore needs a deterministic loss"),
])
def test_bad_input_exits_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.startswith("rankref crosscheck: ")


def test_fixed_delta_of_official_callables_exits_2(capsys):
    pytest.importorskip("torch")
    code, _, err = run_cli(capsys, standin("aploss_repo.py:AP_loss"), "--loss", "ap",
                           "--convention", "official", "--delta", "0.5")
    assert code == 2 and "AP_loss fixes delta at 1.0" in err
    code, _, err = run_cli(capsys, standin("rog_repo.py:GAPLoss.apply"), "--loss", "gap",
                           "--convention", "official", "--delta", "0.25")
    assert code == 2 and "fixes delta at 0.5" in err
    code, _, _ = run_cli(capsys, standin("aploss_repo.py:AP_loss"), "--loss", "ap",
                         "--convention", "official", "--delta", "1", "--cases", "quick")
    assert code == 0


def test_json_is_strict_json_with_every_field(capsys):
    pytest.importorskip("torch")
    code, data, _ = run_json(capsys, standin("ranksort_repo.py:APLoss.apply"), "--loss", "ap",
                             "--convention", "official")
    assert code == 0
    assert set(data) >= {"target", "loss", "convention", "call", "delta", "framework",
                         "battery", "cases", "counts", "hints", "exit_status", "strict",
                         "cases_run", "regimes", "explore"}
    tie = next(c for c in data["cases"] if c["case"] == "delta = 0, ties")
    assert tie["status"] == "expected" and tie["delta"] == 0.0
    assert tie["reason"].startswith("official APLoss divides by 2 * delta")
    assert tie["grad_max_diff"] is None  # NaN is not JSON: non-finite diffs are null


# ------------------------------------------------------------------ --explore

BUGGY_AP = '''
import numpy as np
import rankref


def ap_top_positive_off(logits, targets, delta):
    """rankref's AP Loss, with the top positive's update 1% off when two positives or more."""
    res = rankref.ap_loss(logits, targets, delta)
    grad = np.array(res.grad, dtype=np.float64)
    t = np.asarray(targets).reshape(-1)
    if (t > 0).sum() >= 2:
        x = np.asarray(logits, np.float64).reshape(-1)
        grad.reshape(-1)[np.argmax(np.where(t > 0, x, -np.inf))] *= 1.01
    return res.loss, grad
'''


def test_explore_shrinks_the_first_failure_to_a_runnable_snippet(tmp_path, capsys):
    path = tmp_path / "buggy_ap.py"
    path.write_text(BUGGY_AP)
    target = f"{path}:ap_top_positive_off"
    saved = tmp_path / "failure.npz"
    code = main(["crosscheck", target, "--loss", "ap", "--cases", "quick", "--explore", "20",
                 "--seed", "3", "--save-failure", str(saved)])
    out = capsys.readouterr().out
    assert code == 1
    assert "explore: 20 random cases (seed 3):" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("shrunk explore "))
    entries = int(line.split(" to ")[1].split(" entries")[0])
    assert 2 <= entries <= 4, line
    assert "reference grad  implementation grad" in out
    # the snippet, as printed, runs and reproduces the failure
    start = out.index("as a runnable snippet:")
    snippet = textwrap.dedent(out[start:].split("\n", 2)[2].split("\n  saved to")[0])
    namespace = {}
    exec(compile(snippet.replace("print(format_report(report))", ""), "snippet", "exec"),
         namespace)
    assert namespace["report"][0]["status"] == "fail"
    data = np.load(saved)
    assert data["x"].size == entries and str(data["meta_loss"]) == "ap"
    assert data["reference_grad"].shape == data["implementation_grad"].shape == (entries,)
    assert not np.array_equal(data["reference_grad"], data["implementation_grad"])
    # deterministic: the same seed, the same shrunk case
    again = crosscheck(load_callable(target), "ap", cases="quick", explore=20, seed=3)
    assert again.explore["failure"]["inputs"]["x"] == data["x"].tolist()


def test_explore_passes_on_rankref_and_spans_the_regimes():
    from rankref.crosscheck import explore_case

    res = crosscheck(rankref.rank_sort_loss, "rs", cases="quick", explore=40, seed=1)
    assert res.explore["counts"]["pass"] == 40 and res.explore["failure"] is None
    assert res.exit_status(strict=True) == 0
    rng = np.random.default_rng(0)
    drawn = [explore_case("rs", rng, 0.5, True) for _ in range(300)]
    assert {r for r, _ in drawn} >= {"trained", "precision 1", "all above", "tied groups",
                                     "quality ties", "ties"}
    assert len({inp["delta"] for _, inp in drawn}) > 3
    assert len({inp["x"].size for _, inp in drawn}) > 5
    assert all(explore_case("gap", rng, 0.5, False)[1]["delta"] == 0.5 for _ in range(20))


def test_explore_negative_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["crosscheck", "rankref:rank_sort_loss", "--loss", "rs", "--explore", "-1"])
    assert info.value.code == 2
    assert "argument --explore" in capsys.readouterr().err


def test_rog_standin_reads_minus_one_as_class_c_minus_1():
    """As ROG's code: a row labelled -1 is a positive of class C-1 (a class of its own, -1,
    with the weight of class C-1); where class C-1 is otherwise absent, the same as C-1."""
    torch = pytest.importorskip("torch")
    gap = load_callable(standin("rog_repo.py:GAPLoss"))
    rng = np.random.default_rng(0)
    n, C = 40, 5
    s = torch.tensor(rng.normal(size=(n, C)), dtype=torch.float32)
    y = rng.integers(0, C - 1, n)  # no row of class C-1
    y[rng.random(n) < 0.5] = C
    y[:3] = -1
    counts = torch.ones(C)
    as_minus, as_last = [], []
    for labels, sink in ((y, as_minus), (np.where(y == -1, C - 1, y), as_last)):
        S = s.clone().requires_grad_(True)
        loss = gap.apply(S.reshape(-1), torch.tensor(labels), counts, C, 1.0, 0.1)
        loss.backward()
        sink += [float(loss.detach()), S.grad.numpy().copy()]
    assert as_minus[0] == pytest.approx(as_last[0])
    np.testing.assert_allclose(as_minus[1], as_last[1], rtol=1e-6)
    assert np.any(as_minus[1][:3, C - 1] != 0)  # the -1 rows are positives of class C-1
