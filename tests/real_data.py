"""Where the real-data tests find ../shared/data, and what they do when it is not there.

Off CI a missing folder skips the test (a clone without the data still runs the rest);
with MITOSEG_REQUIRE_DATA=1 (set by .ci/run) it fails the test, so a CI machine whose
data mount went missing cannot report a green run that never read a real file.
"""

import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
REQUIRE_ENV = "MITOSEG_REQUIRE_DATA"


def required():
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def missing(path):
    """Skip, or fail when the data is required; never returns."""
    reason = f"{path} is not present on this machine"
    if required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set: the real-data tests must run", pytrace=False)
    pytest.skip(reason)


class SharedData(str):
    """The data root as a plain path string, plus ``need`` for the subfolder or file a test reads."""

    def need(self, *parts):
        path = os.path.join(self, *parts)
        if not os.path.exists(path):
            missing(path)
        return path


def shared_data(root=ROOT):
    if not os.path.isdir(root):
        missing(root)
    return SharedData(root)
