import io
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rankref._bench import Column, print_table, ratio_text
from rankref.cli import demo, main, plot_demo


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


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "rankref", "--help"], capture_output=True,
                         text=True, cwd=tempfile.gettempdir())  # the installed package
    assert out.returncode == 0 and "crosscheck" in out.stdout
