"""The built distribution, for the tests that use the package as users get it.

``built_dist`` runs ``python -m build`` once per test session (the sdist, then the wheel built
*from that sdist*, so a file the sdist lacks breaks the wheel); ``wheel_venv`` makes a clean venv
per Python version and installs the built wheel into it (never ``-e .``). pip's own cache keeps
the dependency downloads (uv its own); ``--no-compile`` and a pip-less venv keep pip's install
short.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The Python versions the package is tested on: pyproject's classifiers and the Hub file's
# supported_python_versions must say the same (tests/packaged/test_packaging.py checks).
TESTED_PYTHONS = ("3.11", "3.12", "3.13")
# The settings of the contract (shared/CONTRACT.md, "Settings"), secrets marked.
CONTRACT_SETTINGS = (
    "ad_account_id", "access_token", "refresh_token", "client_id", "client_secret", "api_url",
    "sync_mode", "on_invalid_record", "records_per_request", "max_requests_per_minute",
    "list_type", "dry_run", "max_removal_fraction", "ledger_url", "streams",
)  # fmt: skip
SECRETS = ("access_token", "refresh_token", "client_secret")
# In the contract and described by the Hub file and the README, not yet declared by the package:
# allowed missing from --about until then, and only these (none now).
PENDING_SETTINGS: frozenset[str] = frozenset()


def clean_env(**extra: str) -> dict[str, str]:
    """This venv's settings must not leak into a subprocess that runs the installed package."""
    drop = {
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "MELTANO_PROJECT_ROOT",
        "PIP_REQUIRE_VIRTUALENV",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path
    source: Path  # the clean copy of the working tree they were built from (a checkout)


# Not part of the source: left by a dev install, a build, the tests or Meltano. A stale
# *.egg-info/SOURCES.txt in particular would put files into the sdist that the build's own
# configuration would not (setuptools reads it back), hiding a missing package-data entry.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".cache", "*.egg-info", "build", "dist", "__pycache__", "*.pyc",
    ".meltano", ".target-pinterest-audiences", "bench-out", ".*_cache", ".hypothesis",
)  # fmt: skip


@functools.cache
def built_dist() -> Dist:
    """``python -m build`` of a clean copy of the working tree, once per session."""
    root = Path(tempfile.mkdtemp(prefix="tpa-dist-"))
    _cleanup_at_exit(root)
    source, out = root / "source", root / "dist"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    sys.stderr.write(f"[distribution] built in {time.monotonic() - started:.1f}s\n")
    return Dist(wheel, sdist, source)


def find_python(version: str) -> Path | None:
    """An interpreter of this minor version: this one, under pyenv, or on PATH (one that runs:
    pyenv's shims are on PATH for every version, working or not)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return Path(getattr(sys, "_base_executable", None) or sys.executable)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(pyenv.glob(f"{version}.*/bin/python"), key=_patch_level, reverse=True)
    on_path = shutil.which(f"python{version}")
    for candidate in [*candidates, *([Path(on_path)] if on_path else [])]:
        probe = subprocess.run(
            [str(candidate), "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(
            tuple(map(int, version.split(".")))
        ):
            return candidate
    return None


def _patch_level(path: Path) -> int:
    match = re.search(r"\.(\d+)$", path.parent.parent.name)
    return int(match.group(1)) if match else -1


def _install_command(version: str, python: Path) -> list[str]:
    """pip for the oldest tested Python (what `pip install target-pinterest-audiences` does),
    uv for the others (what Meltano 4 does, and ten times faster): both installers are tested."""
    uv = Path(sys.executable).parent / "uv"
    if version != TESTED_PYTHONS[0] and uv.exists():
        return [str(uv), "pip", "install", "-q", "--python", str(python)]
    return [
        sys.executable, "-m", "pip", "--python", str(python),
        "install", "-q", "--no-compile", "--disable-pip-version-check",
    ]  # fmt: skip


@functools.cache
def wheel_venv(version: str) -> Path:
    """A clean venv of that Python with only the built wheel (and its dependencies) installed."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter on this machine")
    wheel = built_dist().wheel
    venv = Path(tempfile.mkdtemp(prefix=f"tpa-venv-{version}-"))
    _cleanup_at_exit(venv)
    started = time.monotonic()
    env = clean_env()
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
    command = [*_install_command(version, venv / "bin" / "python"), str(wheel)]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=900
    )
    assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stderr}"
    sys.stderr.write(
        f"[distribution] venv {version} ({Path(command[0]).name}) in "
        f"{time.monotonic() - started:.1f}s\n"
    )
    return venv


def _cleanup_at_exit(path: Path) -> None:
    import atexit

    atexit.register(shutil.rmtree, path, ignore_errors=True)
