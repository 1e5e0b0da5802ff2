"""The house's one rule: each layer of quart_app imports only the layers below it.

import-linter checks the layers contract in pyproject.toml ([tool.importlinter]) on the
real tree, and the contract is shown to catch a wrong-way import on a copy of it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the quart_app package found in *root*, with the project's contract."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_layer_imports_only_the_layers_below_it() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_way"),
    [
        # The findings, one per layer boundary.
        ("data/accounts.py", "from quart_app.security import passwords"),
        ("security/access.py", "from quart_app.web import errors"),
        ("http/api_errors.py", "from quart_app.data import database"),
        ("upstream/quart.py", "from quart_app.http import bodies"),
        ("web/errors.py", "from quart_app import cli"),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(
    tmp_path: Path, module: str, wrong_way: str
) -> None:
    shutil.copytree(
        ROOT / "quart_app", tmp_path / "quart_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = tmp_path / "quart_app" / module
    path.write_text(f"{path.read_text()}\n{wrong_way}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    importer = "quart_app." + module.removesuffix(".py").replace("/", ".")
    assert f"{importer} ->" in result.stdout
