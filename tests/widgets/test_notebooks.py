"""Each runbook executed top to bottom by nbclient against the embedded sandbox its kernel starts: no error
output, and the widgets' state saved in the notebook (what a saved copy of a runbook shows)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from opskit.sandbox.demo import DEMO
from tests.widgets.conftest import NOTEBOOKS, kernel_env

pytestmark = [pytest.mark.docker, pytest.mark.registry]
RUNBOOKS = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))


def execute(nb: Any, folder: Path, *, allow_errors: bool = False) -> Any:
    client = NotebookClient(
        nb,
        kernel_name="python3",
        store_widget_state=True,
        timeout=180,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute(env=kernel_env())
    return nb


def with_parameters(nb: Any, **values: Any) -> Any:
    """What papermill does: a cell assigning ``values`` right after the one tagged ``parameters``."""
    index = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    code = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code, metadata={"tags": ["injected-parameters"]}))
    return nb


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    saved = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    return {model_id: model["state"] for model_id, model in saved["state"].items()}


def test_every_runbook_has_papermill_parameters_defaulting_to_the_sandbox() -> None:
    assert set(RUNBOOKS) == {"release", "audit", "cleanup"}
    for name in RUNBOOKS:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert 'target = "sandbox"' in tagged[0].source and "profile = None" in tagged[0].source, name
        assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), f"{name} has outputs"
        assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", RUNBOOKS)
def test_runbook_runs_top_to_bottom_and_keeps_its_widgets(name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    if name == "audit":
        with_parameters(nb, family="web")
    execute(nb, tmp_path)

    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert errors == []
    views = [
        out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    states = widget_states(nb)
    assert views and all(model_id in states for model_id in views)
    shown = json.dumps(states)
    assert "the opskit sandbox at" in json.dumps([cell.get("outputs") for cell in nb.cells])
    assert "unexpected error" not in shown
    panel_errors = re.findall(r"<div class='msg error'>([^<]*)</div>", shown)
    assert all("checks failed" in text for text in panel_errors), panel_errors  # failed checks show in red
    if name == "release":
        assert "until ECS records the ROLLING deployment" in shown  # the plan, as it was when the cell ended
        assert "read the plan and the diff" in shown
    elif name == "audit":
        families = sorted(s.name for s in DEMO.services)
        assert f"revisions of {len(families)} families in the library" in shown
        web = 1 + families.index("web")  # the family dropdown starts with "(all)"
        assert any(state.get("description") == "family" and state.get("index") == web for state in states.values())
        tables = [
            out
            for cell in nb.cells
            for out in cell.get("outputs", [])
            if 'class="dataframe' in out.get("data", {}).get("text/html", "")
        ]
        assert len(tables) == 3  # the audit questions' answers, as DataFrames
        assert "checks failed" in shown and "<details open class=" in shown  # the policy report, run
    elif name == "cleanup":
        assert "read the plan; tick the confirmation, then Apply carries it out" in shown
        assert "Revisions that change, and why they may" in shown


def test_a_user_error_in_a_runbook_cell_is_one_line(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('from opskit.widgets import session\nsession.connect("prod")')]
    execute(nb, tmp_path, allow_errors=True)
    (error,) = nb.cells[0].outputs
    assert error.output_type == "error" and error.ename == "ConfigError"
    assert error.traceback == ["ConfigError: target 'prod' is neither 'sandbox' nor 'aws': pick one of them"]
