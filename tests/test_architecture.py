"""
The layer rules: the import-linter contracts in pyproject.toml hold for the
installed package, with no ignored imports, and they do catch a break.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mmo

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install '.[test]')")
    return subprocess.run([str(LINT_IMPORTS), str(PYPROJECT), "--no-cache"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_contracts_hold_with_nothing_ignored(tmp_path: Path) -> None:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    assert all("ignore_imports" not in c for c in config["contracts"])
    types = {c["type"] for c in config["contracts"]}
    assert {"layers", "independence", "forbidden", "acyclic_siblings"} <= types
    run = lint(tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("cluster/chat.py", "from mmo.server import node as _node  # noqa", "meet only through"),
    ("server/node.py", "from mmo.store import db as _db  # noqa", "meet only through"),
    ("wire/frames.py", "from mmo.world import grid as _grid  # noqa", "Layers"),
    ("plugins/game/npcs.py", "import mmo.server.node as _node  # noqa", "do not import the server"),
    ("monitor/present.py", "import PyQt5 as _qt  # noqa", "imports Qt"),
    ("server/pacing.py", "from mmo.server import session as _session  # noqa", "cycles"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str,
                                              contract: str) -> None:
    copy = tmp_path / "mmo"
    shutil.copytree(Path(mmo.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__", "dropin.cache"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    run = lint(tmp_path, env)
    assert run.returncode != 0, run.stdout[-3000:]
    broken = run.stdout[run.stdout.index("Broken contracts"):]
    assert contract in broken, broken[:3000]
