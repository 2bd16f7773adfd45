import io
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from rankref._bench import Column, print_table, ratio_text
from rankref._cli_types import _at_least, _more_than
from rankref.cli import build_parser, demo, main, plot_demo


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


@pytest.mark.parametrize("command", ["demo", "bench", "crosscheck"])
def test_help_is_plain_text_with_defaults(capsys, command):
    top = _help(capsys, ["--help"])
    assert "``" not in top and "demo" in top and "bench" in top
    text = _help(capsys, [command, "--help"])
    assert "``" not in text and ":func:" not in text
    helps = _option_helps(text)
    assert "--plot" in helps and "--seed" in helps or command != "demo"
    defaults = {a.option_strings[-1]: a.default
                for a in build_parser()[1][command]._actions if a.option_strings}
    defaults.update({a.option_strings[0]: a.default
                     for a in build_parser()[1][command]._actions if a.option_strings})
    for option, help_text in helps.items():
        if option in ("-h", "--help"):
            continue
        words = help_text.split(None, 1)
        assert len(words) == 2 and words[1].strip(), f"{option} has no help"
        default = defaults.get(option)
        if default is None or isinstance(default, bool):
            continue  # a flag, or an option that does nothing unless given: no default to show
        assert "(default: " in help_text, f"{option}: {help_text}"


@pytest.mark.parametrize("argv, message", [
    (["demo", "--anchors", "0"], "argument --anchors: must be an integer >= 1, got '0'"),
    (["demo", "--positives", "x"], "argument --positives: expected an integer, got 'x'"),
    (["demo", "--anchors", "2", "--classes", "2", "--positives", "5"], "more than the 2 x 2"),
    (["demo", "--anchors", "100000", "--classes", "100000"], "more than the 2,147,483,647"),
    (["demo", "--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
    (["bench", "--delta", "-0.5"], "argument --delta: must be a finite number >= 0.0"),
    (["bench", "--delta", "inf"], "argument --delta: expected a finite number, got 'inf'"),
    (["bench", "--delta", "nan"], "argument --delta: expected a finite number, got 'nan'"),
    (["bench", "--threads", "0"], "argument --threads: must be an integer in [1, 1024]"),
    (["bench", "--threads", str(2**40)], "argument --threads: must be an integer in [1, 1024]"),
    (["bench", "--max-dense-seconds", "-1"], "argument --max-dense-seconds: must be a finite"),
])
def test_bad_options_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert message in err.splitlines()[-1] and out == ""  # one line; no work started


# the arguments a sub-command requires, so that only the option under test is wrong
REQUIRED = {"crosscheck": ["rankref:rank_sort_loss", "--loss", "rs", "--cases", "quick"],
            "explain": ["--loss", "rs", "--logits", "2,1,0.5,0", "--targets", "0.9,0,0.7,0"]}


def _is_number_type(kind):
    """int, float, or one of the bounded number types of rankref._cli_types."""
    return kind in (int, float) or getattr(kind, "__name__", "").startswith(("int ", "float "))


def _numeric_options():
    """(command, option) for every option of every sub-command that takes one number."""
    _, commands = build_parser()
    found = []
    for name, sub in commands.items():
        for action in sub._actions:
            if action.option_strings and _is_number_type(action.type) and not action.choices:
                found.append((name, action.option_strings[-1]))
    return found


def test_every_numeric_option_is_found():
    options = set(_numeric_options())
    assert {("demo", "--anchors"), ("demo", "--seed"), ("bench", "--delta"),
            ("bench", "--max-dense-seconds"), ("crosscheck", "--rtol")} <= options


@pytest.mark.parametrize("command, option", _numeric_options())
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "x"])
def test_every_numeric_option_refuses_non_finite(capsys, command, option, value):
    """inf, nan or a word: exit status 2 and one line naming the option, before any work
    starts (nothing on stdout); never a traceback.  (Negatives: the table above.)"""
    argv = [command] + REQUIRED.get(command, []) + [f"{option}={value}"]
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2, (argv, out, err)
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and out == ""
    assert option in last or option.lstrip("-").replace("-", "_") in last, last


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "rankref", *argv], capture_output=True,
                          text=True, cwd=tempfile.gettempdir())  # the installed package


@pytest.mark.parametrize("argv, message", [
    (["demo", "--plot", "/missing/dir/x.png"], "the folder '/missing/dir' does not exist"),
    (["bench", "--quick", "--plot", "/missing/dir/x.png"], "the folder '/missing/dir'"),
    (["bench", "--quick", "--delta", "inf"], "argument --delta: expected a finite number"),
    (["demo", "--delta", "0.5"], "unrecognized arguments: --delta 0.5"),
])
def test_user_mistakes_stop_before_the_work_without_a_traceback(argv, message):
    if "--plot" in argv:
        pytest.importorskip("matplotlib")
    res = _cli(*argv)
    assert res.returncode == 2, res
    assert res.stdout == "", res.stdout  # the demo table or the bench header never started
    assert "Traceback" not in res.stderr and message in res.stderr.splitlines()[-1], res.stderr


def test_plot_path_is_checked_before_the_work(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    cases = [(str(tmp_path), "is a folder; give a file name"),
             (str(tmp_path / "x.nosuchformat"), "matplotlib cannot write .nosuchformat files")]
    if os.geteuid() != 0:  # root writes everywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((str(locked / "x.png"), "permission denied"))
    for path, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--anchors", "20", "--classes", "5", "--positives", "3", "--plot",
                  path])
        out, err = capsys.readouterr()
        assert exc.value.code == 2 and out == "" and message in err.splitlines()[-1], err


def test_plot_without_matplotlib_names_a_source_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    for argv in (["demo", "--plot"], ["bench", "--quick", "--plot", "b.png"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        out, err = capsys.readouterr()
        last = err.splitlines()[-1]
        assert exc.value.code == 2 and out == ""
        # rankref is not on the package index: never 'pip install rankref[...]'
        assert "pip install matplotlib" in last and 'pip install ".[docs]"' in last, last
        assert "rankref[" not in last


def test_a_failed_plot_write_is_one_line(monkeypatch, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import rankref.cli

    def full_disk(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rankref.cli, "plot_demo", full_disk)
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--anchors", "20", "--classes", "5", "--positives", "3", "--plot",
              str(tmp_path / "d.png")])
    assert "cannot write the plot" in str(exc.value.code)
    assert "No space left on device" in str(exc.value.code)


@pytest.mark.parametrize("kind, low, high, good, bad", [
    (int, 1, None, {"1": 1, "7": 7}, ["0", "-3", "1.5", "inf", "nan", "", "x"]),
    (float, 0.0, None, {"0": 0.0, "2.5": 2.5, "1e300": 1e300},
     ["-1e-300", "inf", "-inf", "nan", "NaN", "1e400", "x"]),
    (float, 0.0, 1.0, {"0": 0.0, "1": 1.0}, ["1.0001", "-0.0001", "nan", "inf"]),
])
def test_at_least_refuses_non_finite(kind, low, high, good, bad):
    import argparse

    parse = _at_least(kind, low, high)
    for text, value in good.items():
        assert parse(text) == value and type(parse(text)) is kind
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_more_than_refuses_the_bound_and_non_finite():
    import argparse

    parse = _more_than(float, 0.0)
    assert parse("0.5") == 0.5
    for text in ("0", "-1", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_help_of_rankref_crosscheck_after_import_rankref():
    """``import rankref; help(rankref.crosscheck)`` works (the crosscheck --help points there),
    and importing rankref imports neither crosscheck nor torch."""
    code = ("import sys, pydoc, rankref\n"
            "assert 'rankref.crosscheck' not in sys.modules and 'torch' not in sys.modules\n"
            "text = pydoc.render_doc(rankref.crosscheck, renderer=pydoc.plaintext)\n"
            "assert 'crosscheck' in text and callable(rankref.crosscheck.crosscheck), text\n"
            "assert 'torch' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    assert res.returncode == 0, res.stderr
    assert "rankref.crosscheck" in _cli("crosscheck", "--help").stdout


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
