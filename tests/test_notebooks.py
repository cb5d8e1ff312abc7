"""Every tutorial notebook runs top to bottom at small size, and is stored without outputs."""

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOTEBOOK_DIR = os.path.join(REPO_ROOT, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
# Per notebook, at MITOSEG_NOTEBOOK_SMALL=1; the three take about a minute each on 2 busy cores.
CELL_TIMEOUT_S = 300


def test_the_three_tutorials_are_there():
    assert NOTEBOOKS == ["01_quickstart.ipynb", "02_dataset_exploration.ipynb", "03_zoo_comparison.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, name
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs not stripped"
    # The tests drive the notebooks through the first code cell's environment variables.
    assert "MITOSEG_NOTEBOOK_SMALL" in code[0].source and "parameters" in code[0].metadata.get("tags", [])
    assert sum(cell.cell_type == "markdown" for cell in nb.cells) >= len(code) // 2, "reads like a tutorial"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MITOSEG_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MITOSEG_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MITOSEG_PRECISION", "float32")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernel must import this checkout even when the package is not installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
    images = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if "image/png" in o.get("data", {})
    ]
    assert images, f"{name} drew no figure"
