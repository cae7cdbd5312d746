"""
The wheel users install: built from the tracked files, it holds the twistd
dropins, the shipped game extensions (plugins/ as mmo.plugins) and the
monitor (gui/ as mmo.gui), no top-level ``plugins`` or ``gui`` package, and,
installed into a fresh venv, gives every command.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in tracked_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600)
    if run.returncode != 0 and "Could not find a version" in run.stderr:
        pytest.skip("the package registry cannot be reached to get setuptools")
    assert run.returncode == 0, run.stderr[-3000:]
    (found,) = out.glob("mmo-*.whl")
    return found


def test_the_wheel_maps_plugins_and_gui_under_mmo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("twisted/plugins/mmo_plugins.py", "mmo/plugins/__init__.py",
                     "mmo/plugins/mmo_builtin.py", "mmo/plugins/game/npcs.py",
                     "mmo/plugins/game/commands.py", "mmo/gui/window.py", "mmo/gui/cli.py",
                     "mmo/app/webclient/index.html", "mmo/app/webclient/play.js",
                     "mmo/app/webclient/protocol.js", "mmo/app/webclient/map.js",
                     "mmo/app/webclient/play.css"):
        assert expected in names
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mmo", "twisted"}
    assert "twisted/__init__.py" not in names and "twisted/plugins/__init__.py" not in names
    # Every module of the source tree is in the wheel (setup.cfg lists packages).
    for top, installed in (("mmo", "mmo"), ("plugins", "mmo/plugins"), ("gui", "mmo/gui")):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT / top).as_posix()
            assert f"{installed}/{rel}" in names, f"{top}/{rel} is not in the wheel"


def test_console_scripts_are_declared_in_setup_cfg() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"]
    for name in ("mmo-loadgen", "mmo-client", "mmo-monitor"):
        assert name in scripts
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[project]" not in pyproject, "metadata belongs in setup.cfg"


def test_a_fresh_venv_gets_every_command(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    # The dependencies come from this environment (no registry needed); mmo
    # itself only from the wheel, which the fresh venv's own site-packages
    # puts ahead of them.
    purelib = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    (purelib / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    bin_ = venv / "bin"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    for script in ("mmo-loadgen", "mmo-client", "mmo-monitor"):
        run = subprocess.run([str(bin_ / script), "--help"], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "--" in run.stdout
    probe = (
        "import mmo, sys; from twisted.plugin import getPlugins; "
        "from twisted.application.service import IServiceMaker; "
        "from mmo.plugins import find_makers; "
        "names = sorted(p.tapname for p in getPlugins(IServiceMaker)); "
        "print(mmo.__file__); print(names); print(sorted(find_makers()))")
    run = subprocess.run([str(bin_ / "python"), "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where, taps, extensions = run.stdout.splitlines()[-3:]
    assert where.startswith(str(purelib))
    assert "'mmo'" in taps and "'mmo-loadgen'" in taps
    assert "'commands'" in extensions and "'npcs'" in extensions
