"""The package as the Dockerfile builds it runs the whole pipeline, away from the checkout.

The container installs ``pip install .`` from what the Dockerfile copies, not this editable
checkout: a migration, a template or a simulator left out of the package (or of the copy)
would only show when the container starts. There is no container engine here, so the test
replays the Dockerfile's steps: copy what its ``COPY`` lines name, build the wheel from that,
and run ``demo`` from the unpacked wheel in an empty directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

pytestmark = pytest.mark.slow


def _copied_before_install(dockerfile: str) -> list[tuple[str, str]]:
    """(source, destination) of each ``COPY`` before the ``pip install`` (flags dropped)."""
    copies: list[tuple[str, str]] = []
    for line in dockerfile.splitlines():
        if not line.startswith(("COPY ", "RUN ")):
            continue
        words = shlex.split(line)
        if words[0] == "RUN" and "pip" in words and "install" in words:
            return copies
        if words[0] == "COPY":
            *sources, dest = [w for w in words[1:] if not w.startswith("--")]
            copies.extend((s, dest) for s in sources)
    raise AssertionError("the Dockerfile never runs pip install")


def _package_files(root: Path) -> set[str]:
    """Every file of the two packages as the wheel should hold it (docs and bytecode aside)."""
    return {
        p.relative_to(root).as_posix()
        for top in ("sync_agent", "connectors")
        for p in (root / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".md"}
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("image-src")
    for source, dest in _copied_before_install((ROOT / "Dockerfile").read_text(encoding="utf-8")):
        target = src / dest / Path(source).name if dest.endswith("/") else src / dest
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    held = set(zipfile.ZipFile(wheel).namelist())
    missing = _package_files(ROOT) - held
    assert not missing, f"not in the image's package: {sorted(missing)}"


def test_the_installed_package_runs_the_demo_from_an_empty_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "app"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import sync_agent, connectors; print(sync_agent.__file__);"
                            "print(connectors.__file__)"], cwd=work, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where
    done = subprocess.run([sys.executable, "-m", "sync_agent", "demo", "--out", "my data", "--size", "300"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reconcile" in done.stdout
    assert {p.suffix for p in (work / "my data").iterdir()} >= {".db", ".html", ".json", ".xlsx", ".csv", ".eml"}
    # its last line suggests a command: it runs from where the demo ran, whatever the install
    hint = done.stdout.strip().splitlines()[-1].split("try: ", 1)[1]
    listed = subprocess.run(["sh", "-c", hint], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, hint + listed.stdout + listed.stderr
    assert "Hồ sơ không qua bộ phận tiếp nhận" in listed.stdout  # a bypassed_reception flag
