"""The package as users get it (issue 10 points 5 and 7).

The wheel and sdist build and pass ``twine check``; the built wheel, installed into a clean venv
of each tested Python, runs ``--about``, the emulator and a small sync, from a directory where
the source tree is not importable. The version is written once; requires-python, the
classifiers and the Hub file say the same Pythons, the ones tested here.
"""

from __future__ import annotations

import hashlib
import json
import re
import select
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import target_pinterest_audiences
from target_pinterest_audiences.emulator import DEFAULT_ACCESS_TOKEN
from tests.distribution import (
    CONTRACT_SETTINGS,
    PENDING_SETTINGS,
    REPO,
    SECRETS,
    TESTED_PYTHONS,
    built_dist,
    clean_env,
    wheel_venv,
)

pytestmark = pytest.mark.packaging

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
AD_ACCOUNT = "549755885175"
# Dependencies whose lower bound was installed and tested (see the comment in pyproject.toml).
BOUNDED = {
    "singer-sdk", "requests", "jsonschema", "msgspec", "sqlalchemy", "fsspec", "psycopg", "pygal",
    "jinja2",
}  # fmt: skip


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# ---- metadata: one version, the license, the Pythons ------------------------------------------


def _python_classifiers() -> list[str]:
    prefix = "Programming Language :: Python :: "
    return [
        c[len(prefix) :]
        for c in PROJECT["classifiers"]
        if c.startswith(prefix) and re.fullmatch(r"3\.\d+", c[len(prefix) :])
    ]


def test_the_version_is_written_once() -> None:
    assert "version" not in PROJECT, "pyproject.toml must not repeat the version"
    assert "version" in PROJECT["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "target_pinterest_audiences.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", target_pinterest_audiences.__version__)
    # Nowhere else: the Hub file, meltano.yml and the README carry no version of the package.
    pattern = re.compile(r"target-pinterest-audiences\s*(==|@ *v?)\s*\d")
    for name in ("meltano-hub.yml", "meltano.yml", "README.md"):
        assert not pattern.search((REPO / name).read_text()), f"{name} pins a version"


def test_license_is_the_apache_2_text_and_declared_as_spdx() -> None:
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639


def test_requires_python_and_classifiers_say_the_tested_pythons() -> None:
    assert tuple(_python_classifiers()) == TESTED_PYTHONS
    spec = SpecifierSet(PROJECT["requires-python"])
    for version in TESTED_PYTHONS:
        assert spec.contains(f"{version}.0"), version
    oldest = TESTED_PYTHONS[0].split(".")
    newest = TESTED_PYTHONS[-1].split(".")
    assert not spec.contains(f"{oldest[0]}.{int(oldest[1]) - 1}.0"), "claims an untested Python"
    assert not spec.contains(f"{newest[0]}.{int(newest[1]) + 1}.0"), "claims an untested Python"
    hub = yaml.safe_load((REPO / "meltano-hub.yml").read_text())
    assert tuple(hub["supported_python_versions"]) == TESTED_PYTHONS


def test_dependencies_have_tested_ranges() -> None:
    requirements = {Requirement(r).name.lower(): Requirement(r) for r in PROJECT["dependencies"]}
    requirements.update(
        {
            Requirement(r).name.lower(): Requirement(r)
            for r in PROJECT["optional-dependencies"]["postgres"]
        }
    )
    assert set(requirements) == BOUNDED, "a dependency without a tested range"
    for name, requirement in requirements.items():
        assert any(s.operator in (">=", "~=", "==") for s in requirement.specifier), name
    sdk = requirements["singer-sdk"].specifier
    # 0.52.5 to 0.54.9 pass the tests that touch the SDK (its hooks, standard tests, CLI, BATCH,
    # stream maps); 0.52.3 and older refuse the stream_maps `__filter__` key in their schema.
    assert sdk.contains("0.52.5") and sdk.contains("0.54.9")
    assert not sdk.contains("0.52.3") and not sdk.contains("0.55.0")
    # Found by installing the lower bounds: older releases fail a test or are withdrawn.
    assert not requirements["psycopg"].specifier.contains("3.1.9")
    assert not requirements["requests"].specifier.contains("2.32.0")


# ---- the built distribution ---------------------------------------------------------------


def _package_files() -> set[str]:
    """What the wheel must hold: every module and data file of the source package."""
    root = REPO / "target_pinterest_audiences"
    return {
        str(p.relative_to(REPO))
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".py", ".json", ".j2") and "__pycache__" not in p.parts
    }


def test_wheel_and_sdist_build_and_pass_twine_check() -> None:
    dist = built_dist()
    version = target_pinterest_audiences.__version__
    assert dist.wheel.name == f"target_pinterest_audiences-{version}-py3-none-any.whl"
    assert dist.sdist.name == f"target_pinterest_audiences-{version}.tar.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist.wheel), str(dist.sdist)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_sdist_holds_what_a_build_needs_and_no_partial_test_tree() -> None:
    dist = built_dist()
    with tarfile.open(dist.sdist) as sdist:
        names = sdist.getnames()
    top = dist.sdist.name.removesuffix(".tar.gz")
    files = {n.removeprefix(f"{top}/") for n in names}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "PKG-INFO", *_package_files()):
        assert needed in files, f"sdist lacks {needed}"
    assert not [n for n in files if n.startswith("tests/")], "sdist holds part of tests/"
    assert not [n for n in files if n.endswith(".pyc") or "/.venv/" in n or ".cache/" in n]


def test_wheel_holds_the_package_data_entry_points_and_metadata() -> None:
    dist = built_dist()
    version = target_pinterest_audiences.__version__
    info = f"target_pinterest_audiences-{version}.dist-info"
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        openapi = wheel.read("target_pinterest_audiences/emulator/openapi-v5-audiences.json")
    missing = _package_files() - names
    assert not missing, f"wheel lacks {sorted(missing)}"
    assert (
        openapi
        == (REPO / "target_pinterest_audiences/emulator/openapi-v5-audiences.json").read_bytes()
    )
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "Apache-2.0"
    assert SpecifierSet(metadata["Requires-Python"]) == SpecifierSet(PROJECT["requires-python"])
    declared = [*PROJECT["dependencies"]] + [
        f'{r}; extra == "{x}"' for x, rs in PROJECT["optional-dependencies"].items() for r in rs
    ]
    assert sorted(str(Requirement(r)) for r in metadata.get_all("Requires-Dist")) == sorted(
        str(Requirement(r)) for r in declared
    )
    for script in PROJECT["scripts"]:
        assert re.search(rf"^{re.escape(script)} = ", entry_points, re.M), script


# ---- the installed wheel, on each tested Python -------------------------------------------


def _run(
    venv: Path, cwd: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
        check=False,
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@pytest.fixture(params=TESTED_PYTHONS, ids=lambda v: f"py{v}")
def venv(request: pytest.FixtureRequest) -> Path:
    return wheel_venv(request.param)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory away from the source tree."""
    work = tmp_path / "work"
    work.mkdir()
    return work


class Emulator:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url  # ends in /v5
        self.root = url.rsplit("/v5", 1)[0]

    def state(self) -> dict[str, Any]:
        return _get_json(f"{self.root}/_emulator/state")


@pytest.fixture
def installed_emulator(venv: Path, outside: Path) -> Iterator[Emulator]:
    """``pinterest-emulator`` from the venv, on a free port, answering."""
    log = outside / "emulator.log"  # a file, not a pipe nobody reads that could fill up
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(venv / "bin" / "pinterest-emulator"), "--port", "0"],
            cwd=outside,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=clean_env(),
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        match = re.search(r"listening on (http://\S+/v5)", line)
        assert match, (
            f"pinterest-emulator printed {line!r}, exit {process.poll()}: {log.read_text()}"
        )
        emulator = Emulator(process, match.group(1))
        deadline = time.monotonic() + 30
        while True:
            try:
                emulator.state()
                break
            except OSError:
                assert time.monotonic() < deadline, "pinterest-emulator does not answer"
                time.sleep(0.1)
        yield emulator
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()


def test_the_wheel_is_what_runs(venv: Path, outside: Path) -> None:
    proc = _run(
        venv, outside, "python", "-c", "import target_pinterest_audiences as p; print(p.__file__)"
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(venv), proc.stdout
    for script in PROJECT["scripts"]:
        assert (venv / "bin" / script).exists(), script


def test_about_from_the_wheel(venv: Path, outside: Path) -> None:
    proc = _run(venv, outside, "target-pinterest-audiences", "--about", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    about = json.loads(proc.stdout)
    assert about["name"] == "target-pinterest-audiences"
    assert about["version"] == target_pinterest_audiences.__version__
    assert about["supported_python_versions"] == list(TESTED_PYTHONS)
    assert {"about", "stream-maps", "structured-logging", "batch"} <= set(about["capabilities"])
    settings = about["settings"]["properties"]
    for name in CONTRACT_SETTINGS:
        assert name in settings or name in PENDING_SETTINGS, f"--about lacks {name}"
    for name in SECRETS:
        assert settings[name].get("secret") is True, name
    assert about["settings"]["required"] == ["ad_account_id"]


def test_a_small_sync_from_the_wheel_into_its_emulator(
    venv: Path, outside: Path, installed_emulator: Emulator
) -> None:
    addresses = [f"Wheel{n}@Example.com" for n in range(5)]
    schema = {
        "type": "object",
        "properties": {k: {"type": ["string", "null"]} for k in ("segment_name", "email")},
    }
    lines = [{"type": "SCHEMA", "stream": "wheel", "schema": schema, "key_properties": []}]
    lines += [
        {
            "type": "RECORD",
            "stream": "wheel",
            "record": {"segment_name": "From the wheel", "email": a},
        }
        for a in addresses
    ]
    config = {
        "ad_account_id": AD_ACCOUNT,
        "access_token": DEFAULT_ACCESS_TOKEN,
        "api_url": installed_emulator.url,
    }
    (outside / "config.json").write_text(json.dumps(config))
    proc = _run(
        venv, outside, "target-pinterest-audiences", "--config", "config.json",
        stdin="".join(json.dumps(m) + "\n" for m in lines),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    (state_line,) = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    entry = state_line["pinterest_audiences"]["wheel"]
    state = installed_emulator.state()
    (customer_list,) = state["lists"]
    assert customer_list["name"] == "From the wheel"
    assert customer_list["members"] == sorted(sha(a.lower()) for a in addresses)
    assert entry["customer_list_id"] == customer_list["id"]
    assert entry["records_added"] == len(addresses)
    assert state["spec_violations"] == []

    # the run history, reported by the wheel's own console script (its template and charts)
    report = _run(venv, outside, "pinterest-audiences-report", "--format", "json")
    assert report.returncode == 0, report.stderr
    (run,) = json.loads(report.stdout)["streams"]["wheel"]["runs"]
    assert {k: run[k] for k in entry} == entry
    page = _run(
        venv, outside, "pinterest-audiences-report", "--format", "html", "--out", "report.html"
    )
    assert page.returncode == 0, page.stderr
    assert (outside / "report.html").read_text().count("<svg") == 2  # no members: explicit
