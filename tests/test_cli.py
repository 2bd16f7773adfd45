import io
import subprocess
import sys
import tempfile

import numpy as np
import pytest

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


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "rankref", "--help"], capture_output=True,
                         text=True, cwd=tempfile.gettempdir())  # the installed package
    assert out.returncode == 0 and "crosscheck" in out.stdout
