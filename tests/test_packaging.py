"""The wheel a user installs: built offline from this checkout, it carries the license, the
typing marker and the pytest plugin's entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_carries_the_license_the_typing_marker_and_the_plugin(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build leaves build/ and *.egg-info behind, shared by xdist workers.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "pytest_rewardkit", source / "pytest_rewardkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    # --no-build-isolation: setuptools from this environment, nothing fetched from an index.
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("pytest_rewardkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "License-Expression: Apache-2.0" in metadata
    assert "pytest_rewardkit/py.typed" in names
    assert "[pytest11]\nrewardkit = pytest_rewardkit.plugin" in entry_points
