"""Time limits for the subprocesses a test starts, inside pytest.ini's per-test timeout.

When pytest-timeout stops a test it neither kills the child the test waits on (which
then keeps loading a 2-core CI machine) nor shows the child's stderr. A subprocess limit
that runs out first fails the test with that stderr and kills the child.
"""

import configparser
import os
import time

_INI = os.path.join(os.path.dirname(__file__), "..", "pytest.ini")


def per_test_timeout_s():
    parser = configparser.ConfigParser()
    parser.read(_INI)
    return float(parser["pytest"]["timeout"])


# What a test spends outside its subprocesses (model builds, exports, assertions) fits in the rest.
SUBPROCESS_S = per_test_timeout_s() - 60


class Budget:
    """One limit shared by the subprocesses a test (or a module fixture) runs one after another."""

    def __init__(self, seconds=SUBPROCESS_S):
        self.end = time.monotonic() + seconds

    def left(self):
        return max(1.0, self.end - time.monotonic())
