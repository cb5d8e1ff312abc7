import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends in float32 so a mixed-precision test cannot leak its policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def shared_data():
    """Path of ../shared/data; tests that need it skip when it is absent."""
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data is not present on this machine")
    return SHARED_DATA
