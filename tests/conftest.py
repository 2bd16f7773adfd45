import importlib.util
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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
