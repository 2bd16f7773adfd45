"""rankref crosscheck: the battery, the official conventions, outcomes, loading, the command line.

The official-style stand-ins in tests/standins/ have the official signatures, return layouts and
failure modes, and compute through rankref's dense oracle.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rankref
from rankref.cli import main
from rankref.crosscheck import (
    STATUSES,
    crosscheck,
    format_report,
    load_callable,
    make_cases,
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
        "random", "ties", "single positive", "zero positives"]


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


# ------------------------------------------------------------------ the official callables

OFFICIAL = {
    "RankSort": ("ranksort_repo.py:RankSort", "rs",
                 {"zero positives": "expected"}),
    "RankSort.apply": ("ranksort_repo.py:RankSort.apply", "rs",
                       {"zero positives": "expected"}),
    "APLoss.apply": ("ranksort_repo.py:APLoss.apply", "ap",
                     {"zero positives": "expected", "delta = 0, ties": "expected"}),
    "BucketedRankSort": ("brs_repo.py:BucketedRankSort", "brs",
                         {"ties": "expected", "float16-rounded": "expected",
                          "2-D [anchors, classes]": "skipped"}),
    "AP_loss": ("aploss_repo.py:AP_loss", "ap",
                {"delta = 0, ties": "skipped", "delta = 4": "skipped"}),
    "GAPLoss.apply": ("rog_repo.py:GAPLoss.apply", "gap",
                      {"zero positives": "skipped", "ignored labels": "skipped",
                       "delta = 0, ties": "skipped", "delta = 2": "skipped"}),
}
OFF = {
    "RankSort": "ranksort_repo.py:RankSortOnePercentOff",
    "APLoss.apply": "ranksort_repo.py:APLossOnePercentOff.apply",
    "BucketedRankSort": "brs_repo.py:BucketedRankSortOnePercentOff",
    "AP_loss": "aploss_repo.py:AP_loss_one_percent_off",
    "GAPLoss.apply": "rog_repo.py:GAPLossOnePercentOff.apply",
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
    # --strict fails a run with EXPECTED cases, and only those
    code, out, _ = run_cli(capsys, standin(spec), "--loss", loss, "--convention", "official",
                           "--strict")
    assert code == (1 if "expected" in special.values() else 0)


@pytest.mark.parametrize("name", sorted(OFF))
def test_official_standin_one_percent_off_exits_1(capsys, name):
    pytest.importorskip("torch")
    _, loss, special = OFFICIAL[name]
    code, data, statuses = run_json(capsys, standin(OFF[name]), "--loss", loss,
                                    "--convention", "official")
    assert code == 1
    assert statuses["random"] == "fail"
    for case, status in statuses.items():
        # passing is possible only where the positives' update is 0 (nothing to scale)
        assert status != "pass" or case in ("zero positives", "no relevant negatives"), case
        assert status != "expected" or special.get(case) == "expected", case
    if loss == "brs":  # tie placement does not explain it: the ulp proof refuses
        assert statuses["ties"] == "fail"
        ties = next(c for c in data["cases"] if c["case"] == "ties")
        assert any("moved up one ulp the case still fails" in d for d in ties["detail"])


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
    assert "battery all: 10 cases" in out
    assert "EXPECTED ties: official BucketedRankSort sorts with an unstable sort" in out
    assert "Moved up one ulp each, the case passes" in out
    assert "SKIPPED 2-D [anchors, classes]: official BucketedRankSort takes 1-D float32" in out
    assert out.rstrip().endswith(
        "7 passed, 0 failed, 0 errors, 2 expected, 1 skipped: exit status 0")


def test_official_zero_positive_reason_shows_the_exception(capsys):
    pytest.importorskip("torch")
    code, data, _ = run_json(capsys, standin("ranksort_repo.py:RankSort"), "--loss", "rs",
                             "--convention", "official", "--cases", "quick")
    zero = data["cases"][3]
    assert code == 0 and zero["status"] == "expected"
    assert zero["reason"].startswith("official RankSort raises with no positive: torch.min of "
                                     "an empty tensor")
    assert "numel() == 0" in zero["detail"][0]


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
    assert "error" in {r["status"] for r in res}
    assert any("GAPLoss.apply" in h for h in res.hints)


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
    start = time.perf_counter()
    res = crosscheck(hang, "rs", cases="quick", timeout=1.0)
    assert time.perf_counter() - start < 30
    statuses = {r["case"]: r["status"] for r in res}
    assert statuses == {"random": "pass", "ties": "pass", "single positive": "error",
                        "zero positives": "pass"}
    assert "ran longer than the timeout (1 s)" in res[2]["reason"]
    deadline = time.time() + 10
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
    assert "Did you mean 'RankSort'? Its callables: APLoss, APLossOnePercentOff, RankSort" \
        in out.stderr


def test_crosscheck_help_shows_both_forms():
    out = subprocess.run([sys.executable, "-m", "rankref", "crosscheck", "--help"],
                         capture_output=True, text=True, cwd=HERE)
    assert out.returncode == 0
    text = out.stdout
    assert "MODULE:CALLABLE" in text and "path/to/file.py:NAME" in text
    assert "--convention" in text and "--timeout" in text and "--strict" in text
    assert "EXPECTED" in text and "SKIPPED" in text


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
                         "battery", "cases", "counts", "hints", "exit_status", "strict"}
    tie = next(c for c in data["cases"] if c["case"] == "delta = 0, ties")
    assert tie["status"] == "expected" and tie["delta"] == 0.0
    assert tie["reason"].startswith("official APLoss divides by 2 * delta")
    assert tie["grad_max_diff"] is None  # NaN is not JSON: non-finite diffs are null
