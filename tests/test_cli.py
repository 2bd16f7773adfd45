import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rankref.cli import demo, main, plot_demo
from rankref.crosscheck import crosscheck, format_report, load_callable

HERE = os.path.dirname(os.path.abspath(__file__))


def test_demo_methods_agree():
    out = io.StringIO()
    rows = demo(num_anchors=300, num_classes=20, num_positives=40, repeat=1, file=out)
    text = out.getvalue()
    assert "bucketed" in text and "brs" in text and "GAP" in text
    for loss, delta, method, vals, dloss, dgrad, sec in rows:
        if method == "bucketed" or (method == "brs" and delta == 0.0):
            assert dloss <= 1e-12 and dgrad <= 1e-6, (loss, delta, method)
        assert sec > 0 and all(np.isfinite(vals))
    assert {r[0] for r in rows} == {"RS", "AP", "GAP"}


def test_main_runs_demo_by_default(capsys):
    assert main(["--anchors", "100", "--classes", "10", "--positives", "10"]) == 0
    assert "max |diff|" in capsys.readouterr().out


def test_demo_plot(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_demo(str(tmp_path / "demo.png"))
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bench_quick_runs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from rankref._bench import plot_ranking_bench, run_ranking_bench
    out = io.StringIO()
    rows = run_ranking_bench(threads=1, quick=True, max_dense_seconds=0.5, progress=False,
                             file=out)
    assert len(rows) == 8 and "bucketed" in out.getvalue()
    assert all(r["bucketed"] > 0 and r["sort32"] > 0 for r in rows)
    assert plot_ranking_bench(rows, str(tmp_path / "b.png")).endswith("b.png")


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
    assert all(r["status"] == "pass" for r in res), format_report(res, loss, target, 1e-4, 1e-6)
    assert len(res) >= 3


def test_crosscheck_brs_method():
    import rankref
    res = crosscheck(lambda x, t, d: rankref.rank_sort_loss(x, t, d, "brs"), "brs")
    assert all(r["status"] == "pass" for r in res)
    res = crosscheck(lambda x, t, d: rankref.rank_sort_loss(x, t, d, "bucketed"), "brs")
    assert any(r["status"] == "fail" for r in res)  # exact != BRS at delta = 0.5


def test_crosscheck_catches_wrong_self_term(capsys):
    code = main(["crosscheck", f"{HERE}/_wrong_rs.py:rank_sort_self_one", "--loss", "rs"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL random" in out and "ranking loss: got" in out
    assert "entries differ; [" in out and "expected" in out  # the readable diff


def test_crosscheck_reports_crashes_per_case():
    res = crosscheck(load_callable(f"{HERE}/_wrong_rs.py:broken"), "rs", cases="quick")
    assert [r["status"] for r in res] == ["error"] * len(res)
    assert "RuntimeError: boom" in res[0]["detail"][0]


def test_crosscheck_json_and_official_convention(capsys):
    torch = pytest.importorskip("torch")

    class OfficialStyle(torch.autograd.Function):
        """Both gradients on the ranking output, as the official RankSort."""

        @staticmethod
        def forward(ctx, logits, targets, delta):
            import rankref
            r = rankref.rank_sort_loss(logits.detach().numpy(), targets.numpy(), delta)
            ctx.save_for_backward(torch.from_numpy(r.grad))
            return (torch.tensor(r.ranking_loss, dtype=logits.dtype),
                    torch.tensor(r.sorting_loss, dtype=logits.dtype))

        @staticmethod
        def backward(ctx, g1, g2):
            (g,) = ctx.saved_tensors
            return g * g1, None, None

    official = crosscheck(OfficialStyle, "rs", convention="official")
    assert all(r["status"] == "pass" for r in official)
    ours = crosscheck(OfficialStyle, "rs", convention="rankref")
    assert any(r["status"] == "fail" for r in ours)
    sys.modules["_official_style"] = type(sys)("_official_style")
    sys.modules["_official_style"].RS = OfficialStyle
    code = main(["crosscheck", "_official_style:RS", "--loss", "rs", "--json", "--cases",
                 "quick", "--convention", "official"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["status"] for d in data} == {"pass"}


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "rankref", "--help"], capture_output=True,
                         text=True, cwd=tempfile.gettempdir())  # the installed package
    assert out.returncode == 0 and "crosscheck" in out.stdout
