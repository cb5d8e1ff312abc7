"""The repository keeps one style: ruff's formatter and linter with the rules in ruff.toml.

Run as a test so that the README's test command, and so CI, enforce it; `ruff format .` and
`ruff check --fix .` repair most of what it reports.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff():
    found = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    if not os.path.exists(found):
        pytest.fail("ruff is not installed: pip install -e '.[test]' installs the pinned version")
    return found


@pytest.mark.parametrize("args", [["format", "--check", "."], ["check", "."]], ids=["format", "lint"])
def test_repository_follows_ruff(args):
    result = subprocess.run([_ruff(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"ruff {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def test_a_style_error_is_reported(tmp_path):
    # Guards the test above against passing because ruff looked at nothing.
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nx=1\n")
    fmt = subprocess.run([_ruff(), "format", "--check", str(bad)], capture_output=True, text=True, timeout=60)
    lint = subprocess.run([_ruff(), "check", "--select", "F401", str(bad)], capture_output=True, text=True, timeout=60)
    assert fmt.returncode == 1 and "bad.py" in fmt.stdout
    assert lint.returncode == 1 and "F401" in lint.stdout
