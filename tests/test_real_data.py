"""A missing ../shared/data skips the real-data tests, and fails them under MITOSEG_REQUIRE_DATA=1."""

import os

import pytest
import real_data

SKIPPED = pytest.skip.Exception
FAILED = pytest.fail.Exception


def test_missing_root_skips_without_the_requirement(tmp_path, monkeypatch):
    monkeypatch.delenv(real_data.REQUIRE_ENV, raising=False)
    with pytest.raises(SKIPPED, match="not present"):
        real_data.shared_data(str(tmp_path / "absent"))


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_missing_root_fails_when_the_data_is_required(tmp_path, monkeypatch, value):
    monkeypatch.setenv(real_data.REQUIRE_ENV, value)
    with pytest.raises(FAILED, match="MITOSEG_REQUIRE_DATA"):
        real_data.shared_data(str(tmp_path / "absent"))


@pytest.mark.parametrize("value", ["", "0"])
def test_an_unset_or_zero_requirement_still_skips(tmp_path, monkeypatch, value):
    monkeypatch.setenv(real_data.REQUIRE_ENV, value)
    with pytest.raises(SKIPPED):
        real_data.shared_data(str(tmp_path / "absent"))


def test_a_missing_subfolder_fails_when_required_and_a_present_one_is_returned(tmp_path, monkeypatch):
    (tmp_path / "monuseg" / "train").mkdir(parents=True)
    monkeypatch.setenv(real_data.REQUIRE_ENV, "1")
    root = real_data.shared_data(str(tmp_path))
    assert root == str(tmp_path) and os.path.join(root, "x") == str(tmp_path / "x")
    assert root.need("monuseg", "train") == str(tmp_path / "monuseg" / "train")
    with pytest.raises(FAILED, match="mitos12_dev"):
        root.need("mitos12_dev")
    monkeypatch.delenv(real_data.REQUIRE_ENV)
    with pytest.raises(SKIPPED, match="mitos12_dev"):
        root.need("mitos12_dev")


def test_ci_requires_the_data_and_runs_the_readme_command():
    root = os.path.join(os.path.dirname(__file__), "..")
    with open(os.path.join(root, ".ci", "run")) as fh:
        script = fh.read()
    with open(os.path.join(root, "README.md")) as fh:
        readme = fh.read()
    command = 'pip install -e ".[test]" && python -m pytest'
    assert "export MITOSEG_REQUIRE_DATA=1" in script
    assert command in readme and command in script.splitlines()
