import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before Keras: its TensorFlow starts without the start-up lines (mitoseg_tf._quiet). A worker's imports
# happen outside any test's capture, so those lines would reach the terminal, even after the summary.
import keras  # noqa: E402
import pytest  # noqa: E402
import real_data  # noqa: E402

import mitoseg_tf  # noqa: E402, F401

SHARED_DATA = real_data.ROOT


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends in float32 so a mixed-precision test cannot leak its policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def shared_data():
    """Path of ../shared/data (``shared_data.need(*parts)`` for a subfolder): skips when absent,
    fails instead under MITOSEG_REQUIRE_DATA=1 (see tests/real_data.py)."""
    return real_data.shared_data(SHARED_DATA)
