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
