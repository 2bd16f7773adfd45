import io

import numpy as np

from rankref.__main__ import demo, main


def test_demo_methods_agree():
    out = io.StringIO()
    rows = demo(num_anchors=300, num_classes=20, num_positives=40, repeat=1, file=out)
    text = out.getvalue()
    assert "bucketed" in text and "brs" in text and "dense" in text
    for loss, delta, method, vals, dloss, dgrad, sec in rows:
        if method == "bucketed" or (method == "brs" and delta == 0.0):
            assert dloss <= 1e-12 and dgrad <= 1e-6, (loss, delta, method)
        assert sec > 0 and all(np.isfinite(vals))


def test_main_runs(capsys):
    assert main(["--anchors", "100", "--classes", "10", "--positives", "10"]) == 0
    assert "max |diff|" in capsys.readouterr().out
