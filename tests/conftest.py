import importlib
import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL = (f"rankref is not installed (the tests import the installed package, with its compiled "
           f"kernels): run pip install \".[test]\" in {ROOT}, then pytest")


def _import_installed_rankref():
    """Import rankref with its kernels; '' when it works, else the line that says what to do.

    ``python -m pytest`` puts the current folder first on sys.path: from the repository root,
    the source folder ``rankref/`` (no compiled kernels unless built in place) shadows the
    installed package.  Then the source folder is dropped from the path and the installed
    package is imported instead.
    """
    try:
        import rankref._kernels  # noqa: F401
        return ""
    except ImportError:
        pass
    for name in [m for m in sys.modules if m.split(".")[0] in ("rankref", "rankref_gpu")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
    importlib.invalidate_caches()
    try:
        import rankref._kernels  # noqa: F401,F811
        return ""
    except ImportError as exc:
        return f"{INSTALL} ({exc})"


_NOT_INSTALLED = _import_installed_rankref()
if not _NOT_INSTALLED:
    import rankref as _rankref

    if (os.path.isfile(os.path.join(ROOT, "rankref", "__init__.py"))
            and not os.path.abspath(_rankref.__file__).startswith(os.path.join(ROOT, ""))):
        # The installed package is not this folder (not an editable install): a child
        # ``python -c``/``-m`` started here would import the source folder instead (no
        # kernels).  Python >= 3.11 then leaves the current folder off the child's sys.path.
        os.environ.setdefault("PYTHONSAFEPATH", "1")


def pytest_configure(config):
    if _NOT_INSTALLED:  # one line (pytest prints 'ERROR: ...'), exit status 4, before collection
        raise pytest.UsageError(_NOT_INSTALLED)


import numpy as np  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default", max_examples=int(os.environ.get("RANKREF_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
)
settings.load_profile("default")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


CPU_TORCH = ("pip install torch --index-url https://download.pytorch.org/whl/cpu "
             "(a CPU-only torch; see the README)")


def pytest_terminal_summary(terminalreporter):
    """Say in one line why the rankref.torch tests were skipped, when torch is missing."""
    if importlib.util.find_spec("torch") is not None:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "torch" in str(getattr(r, "longrepr", ""))]
    if skipped:
        terminalreporter.write_line(f"rankref: the rankref.torch tests were skipped because torch "
                                    f"is not installed; to run them: {CPU_TORCH}.", yellow=True)
