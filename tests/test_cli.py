import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rankref._bench import Column, print_table, ratio_text
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
    dense_rows = [line for line in text.splitlines() if "  dense " in line]
    assert len(dense_rows) == 4 and all(line.endswith("1.0x") for line in dense_rows)


def test_main_runs_demo_by_default(capsys):
    assert main(["--anchors", "100", "--classes", "10", "--positives", "10"]) == 0
    assert "max |diff|" in capsys.readouterr().out


@pytest.mark.parametrize("ratio, text", [(0.8, "0.8x"), (0.04, "0.0x"), (1.0, "1.0x"),
                                         (9.5, "9.5x"), (12.4, "12x"), (417.3, "417x"),
                                         (float("inf"), "-")])
def test_ratio_text_one_decimal_below_ten(ratio, text):
    assert ratio_text(ratio) == text


def _help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def _option_helps(text):
    """{option: its help text} from an argparse help page."""
    helps, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            helps[current] = " ".join(line.split()[1:])
        elif current and line.startswith("    "):
            helps[current] += " " + line.strip()
        else:
            current = None
    return helps


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_help_is_plain_text_with_defaults(capsys, command):
    top = _help(capsys, ["--help"])
    assert "``" not in top and "demo" in top and "bench" in top
    text = _help(capsys, [command, "--help"])
    assert "``" not in text and ":func:" not in text
    helps = _option_helps(text)
    assert "--plot" in helps and "--seed" in helps or command == "bench"
    for option, help_text in helps.items():
        if option in ("-h", "--help"):
            continue
        words = help_text.split(None, 1)
        assert len(words) == 2 and words[1].strip(), f"{option} has no help"
        flag = option in ("--quick", "--no-progress")
        assert flag or "(default: " in help_text or "when no name is given" in help_text, \
            f"{option}: {help_text}"


@pytest.mark.parametrize("argv, message", [
    (["demo", "--anchors", "0"], "--anchors: must be at least 1"),
    (["demo", "--positives", "x"], "expected an integer"),
    (["demo", "--anchors", "2", "--classes", "2", "--positives", "5"], "more than the 2 x 2"),
    (["bench", "--delta", "-0.5"], "--delta: must be at least 0.0"),
    (["bench", "--threads", "0"], "--threads: must be at least 1"),
])
def test_bad_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_plot_without_a_name_writes_rankref_demo_png(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--anchors", "60", "--classes", "10", "--positives", "12",
                 "--plot"]) == 0
    assert "wrote rankref-demo.png" in capsys.readouterr().out
    with open(tmp_path / "rankref-demo.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_plot_draws_the_table_batch(tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_demo(str(tmp_path / "demo.png"), 50, 8, 10, "trained", seed=3)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_bench_table_rows_are_whole_lines(capsys):
    columns = [Column("case", -6, lambda r: r["name"]), Column("value", 8,
                                                                lambda r: f"{r['v']:.2f}")]
    out = io.StringIO()
    rows = print_table(columns, [("a", 1.0), ("b", 2.5)],
                       lambda name, v: dict(name=name, v=v), progress=True, file=out)
    assert rows == [dict(name="a", v=1.0), dict(name="b", v=2.5)]
    assert out.getvalue().splitlines() == ["case     value", "-" * 14, "a         1.00",
                                           "b         2.50"]
    assert "a " not in capsys.readouterr().err  # the rows never go to the bar's stream


def test_bench_quick_runs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    from rankref._bench import plot_ranking_bench, run_ranking_bench
    out = io.StringIO()
    rows = run_ranking_bench(threads=1, quick=True, max_dense_seconds=0.5, progress=False,
                             file=out)
    assert len(rows) == 8 and "bucketed" in out.getvalue()
    assert all(r["bucketed"] > 0 and r["sort32"] > 0 for r in rows)
    assert [(r["regime"], r["n"], r["p"]) for r in rows] == [
        (g, n, p) for g in ("early", "trained") for n in (10**5, 10**6) for p in (100, 1000)]
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
