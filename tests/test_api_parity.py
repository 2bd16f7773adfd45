import inspect
import tempfile

import rankref
import rankref_gpu


def test_same_public_names():
    assert rankref_gpu.__all__ == rankref.__all__


def test_same_signatures():
    for name in rankref.__all__:
        a, b = getattr(rankref, name), getattr(rankref_gpu, name)
        if inspect.isclass(a) and issubclass(a, tuple):
            assert a is b, name  # result types are shared
            continue
        if inspect.isclass(a):
            assert issubclass(b, a), name
            continue
        assert inspect.signature(a) == inspect.signature(b), name
        assert b.__doc__ and a.__doc__.strip()[:40] in b.__doc__, name
        if b is not a:  # a mirror (scalar helpers are rankref's own functions)
            assert "torch tensors on their device" in b.__doc__, name  # says what runs where


def test_import_without_cupy():
    import subprocess
    import sys
    code = ("import sys; sys.modules['cupy'] = None; import numpy as np, rankref_gpu as rg; "
            "print(rg.rank_sort_loss(np.array([1.0, 0.0]), np.array([1.0, 0.0]), 0.0)"
            ".ranking_loss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())  # the installed package, not the checkout
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 0.0
