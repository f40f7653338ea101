"""The real pipeline: ``meltano run tap-postgres target-pinterest-audiences``.

A throwaway PostgreSQL server (tests/pg.py) holds an audience table; Meltano (in a venv of its
own, cached in ``.cache/meltano-venv``) installs MeltanoLabs' tap-postgres and this loader (from
the repo) as declared in the repo's ``meltano.yml``, and runs the pipeline against the local
Pinterest emulator. Meltano's state store then holds the list and audience ids; a second,
``mirror`` run after the table changed sends exactly the difference.

The Meltano project lives in ``.cache/meltano-project`` (git-ignored) so that the plugin venvs
survive between runs (``meltano install`` then only checks them); its system database (state)
and the target's ledger directory are new for every test session.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_pinterest_audiences.emulator import DEFAULT_ACCESS_TOKEN, PinterestEmulator
from tests.conftest import AD_ACCOUNT, REPO, sha

pytestmark = pytest.mark.meltano

MELTANO_VERSION = "4.4.1"
TAP_POSTGRES_PIP_URL = "meltanolabs-tap-postgres==0.10.0"
CACHE = REPO / ".cache"
MELTANO_VENV = CACHE / "meltano-venv"
PROJECT = CACHE / "meltano-project"
STREAM = "public-audience_members"
LOADER = "target-pinterest-audiences"
JOB = f"dev:tap-postgres-to-{LOADER}"


def _log(message: str) -> None:
    sys.stderr.write(f"[test_meltano] {message}\n")


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """Two test sessions in one checkout must not build or use the cached project at once."""
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "meltano.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """Neither this venv's packages nor its settings may leak into Meltano's or the plugins'."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MELTANO_PROJECT_ROOT"}
    return {k: v for k, v in env.items() if k not in drop}


def _meltano_venv() -> Path:
    """A venv holding only Meltano (its dependencies must not meet singer-sdk 0.54's)."""
    meltano = MELTANO_VENV / "bin" / "meltano"
    marker = MELTANO_VENV / ".installed"
    if marker.exists() and marker.read_text() == MELTANO_VERSION and meltano.exists():
        return meltano
    shutil.rmtree(MELTANO_VENV, ignore_errors=True)
    started = time.monotonic()
    base = getattr(sys, "_base_executable", None) or sys.executable
    env = _clean_env(os.environ)
    subprocess.run([base, "-m", "venv", str(MELTANO_VENV)], check=True, env=env)
    pip = [str(MELTANO_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, capture_output=True, env=env)
    proc = subprocess.run(
        [*pip, f"meltano=={MELTANO_VERSION}"], capture_output=True, text=True, check=False, env=env
    )
    assert proc.returncode == 0, f"pip install meltano=={MELTANO_VERSION} failed:\n{proc.stderr}"
    marker.write_text(MELTANO_VERSION)
    _log(f"meltano venv built in {time.monotonic() - started:.1f}s")
    return meltano


def _project_yaml() -> dict[str, Any]:
    """The repo's meltano.yml, with the loader installed from this checkout."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == LOADER]
    loader["pip_url"] = f"-e {REPO}"
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-postgres"]
    assert tap["pip_url"] == TAP_POSTGRES_PIP_URL
    return project


class Meltano:
    def __init__(self, executable: Path, project: Path, env: dict[str, str]) -> None:
        self.executable = executable
        self.project = project
        self.env = env

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.executable), *args],
            cwd=self.project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, (
            f"meltano {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
        return proc

    def state(self, suffix: str) -> dict[str, Any]:
        proc = self.ok("state", "get", f"{JOB}:{suffix}")
        return json.loads(proc.stdout.strip().splitlines()[-1])["singer_state"]


@pytest.fixture(scope="module")
def meltano(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Meltano]:
    from sqlalchemy.engine import make_url

    pg = make_url(postgres_url)
    system_db = tmp_path_factory.mktemp("meltano-system") / "meltano.db"
    env = {
        **os.environ,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_DATABASE_URI": f"sqlite:///{system_db}",
        "TAP_POSTGRES_HOST": str(pg.host),
        "TAP_POSTGRES_PORT": str(pg.port),
        "TAP_POSTGRES_USER": str(pg.username),
        "TAP_POSTGRES_DATABASE": str(pg.database),
        # tap-postgres insists on a password; the throwaway server trusts local connections.
        "TAP_POSTGRES_PASSWORD": pg.password or "unused-with-trust-auth",
        "TARGET_PINTEREST_AUDIENCES_AD_ACCOUNT_ID": AD_ACCOUNT,
        "TARGET_PINTEREST_AUDIENCES_ACCESS_TOKEN": DEFAULT_ACCESS_TOKEN,
    }
    env = _clean_env(env)
    with _cache_lock():
        executable = _meltano_venv()
        PROJECT.mkdir(parents=True, exist_ok=True)
        (PROJECT / "meltano.yml").write_text(yaml.safe_dump(_project_yaml(), sort_keys=False))
        shutil.rmtree(PROJECT / ".target-pinterest-audiences", ignore_errors=True)
        runner = Meltano(executable, PROJECT, env)
        started = time.monotonic()
        runner.ok("install", timeout=1200)
        _log(f"meltano install took {time.monotonic() - started:.1f}s")
        yield runner
        shutil.rmtree(PROJECT / ".target-pinterest-audiences", ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_ledger(meltano: Meltano) -> None:
    """Each test has a Pinterest of its own (a new emulator, whose list ids start over): the
    target's memory of the lists it loaded, kept in the project, starts over with it (both
    sync modes record there)."""
    shutil.rmtree(meltano.project / ".target-pinterest-audiences", ignore_errors=True)


def _fill_table(postgres_url: str, segment_name: str, rows: list[dict[str, Any]]) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    pg = make_url(postgres_url)
    with psycopg.connect(
        host=pg.host, port=pg.port, user=pg.username, dbname=pg.database, autocommit=True
    ) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.audience_members ("
            " id serial PRIMARY KEY, segment_name text NOT NULL, email text, action text)"
        )
        conn.execute("TRUNCATE public.audience_members")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.audience_members (segment_name, email, action)"
                " VALUES (%s, %s, %s)",
                [(segment_name, r["email"], r.get("action")) for r in rows],
            )


def _run(meltano: Meltano, emulator: PinterestEmulator, suffix: str, **settings: str) -> None:
    env = {"TARGET_PINTEREST_AUDIENCES_API_URL": emulator.url}
    env.update({f"TARGET_PINTEREST_AUDIENCES_{k.upper()}": v for k, v in settings.items()})
    started = time.monotonic()
    meltano.ok(
        "run",
        "--state-id-suffix",
        suffix,
        "tap-postgres",
        LOADER,
        env=env,
    )
    _log(f"meltano run ({suffix}) took {time.monotonic() - started:.1f}s")


def _only_list(emulator: PinterestEmulator) -> dict[str, Any]:
    (customer_list,) = emulator.lists(AD_ACCOUNT)
    return customer_list


def _update_records(emulator: PinterestEmulator, list_id: str, operation: str) -> list[str]:
    records: list[str] = []
    for r in emulator.requests:
        if (
            r.method == "PATCH"
            and r.path.endswith(f"/customer_lists/{list_id}")
            and r.status == 200
            and isinstance(r.body, dict)
            and r.body.get("operation_type") == operation
        ):
            records += [x.strip() for x in r.body["records"].split(",") if x.strip()]
    return records


def test_meltano_accepts_the_project(meltano: Meltano) -> None:
    about = meltano.ok("invoke", LOADER, "--about", "--format", "json")
    assert "batch" in json.loads(about.stdout)["capabilities"]
    listed = meltano.ok("config", "list", LOADER)
    for secret in ("access_token", "refresh_token", "client_secret"):
        assert secret in listed.stdout
    assert DEFAULT_ACCESS_TOKEN not in listed.stdout  # sensitive: shown redacted


def test_explicit_run_loads_the_table_and_meltano_keeps_the_ids(
    meltano: Meltano, emulator: PinterestEmulator, postgres_url: str
) -> None:
    addresses = [f"Member{n}@Example.com" for n in range(25)]
    rows: list[dict[str, Any]] = [{"email": a, "action": "add"} for a in addresses]
    rows += [
        {"email": "no-at-sign", "action": "add"},
        {"email": "user99@example.com", "action": None},
    ]
    _fill_table(postgres_url, "Meltano Explicit", rows)

    _run(meltano, emulator, "explicit", sync_mode="explicit")

    customer_list = _only_list(emulator)
    assert customer_list["name"] == "Meltano Explicit"
    expected = {sha(a.lower()) for a in addresses} | {sha("user99@example.com")}
    assert emulator.members(AD_ACCOUNT, customer_list["id"]) == expected
    (audience,) = emulator.audiences(AD_ACCOUNT)

    state = meltano.state("explicit")
    entry = state["pinterest_audiences"][STREAM]
    assert entry["customer_list_id"] == customer_list["id"]
    assert entry["audience_id"] == audience["id"]
    assert entry["records_added"] == 26
    assert entry["records_invalid"] == 1
    # The tap's own state is kept next to ours.
    assert "bookmarks" in state


def test_mirror_run_sends_exactly_the_difference(
    meltano: Meltano, emulator: PinterestEmulator, postgres_url: str
) -> None:
    old = [f"mirror{n}@example.com" for n in range(30)]
    new = old[6:] + [f"joined{n}@example.com" for n in range(8)]  # 6 left, 8 joined
    _fill_table(postgres_url, "Meltano Mirror", [{"email": a} for a in old])
    _run(meltano, emulator, "mirror", sync_mode="mirror")
    customer_list = _only_list(emulator)
    list_id = customer_list["id"]
    assert emulator.members(AD_ACCOUNT, list_id) == {sha(a) for a in old}
    first = meltano.state("mirror")["pinterest_audiences"][STREAM]
    assert first["customer_list_id"] == list_id
    ledger_dir = meltano.project / ".target-pinterest-audiences"
    assert ledger_dir.is_dir() and any(ledger_dir.iterdir()), "no mirror ledger in the project"

    _fill_table(postgres_url, "Meltano Mirror", [{"email": a} for a in new])
    emulator.requests.clear()
    _run(meltano, emulator, "mirror", sync_mode="mirror")

    assert [c["id"] for c in emulator.lists(AD_ACCOUNT)] == [list_id]
    assert emulator.members(AD_ACCOUNT, list_id) == {sha(a) for a in new}
    added = _update_records(emulator, list_id, "ADD")
    removed = _update_records(emulator, list_id, "REMOVE")
    assert sorted(added) == sorted(sha(a) for a in set(new) - set(old))
    assert sorted(removed) == sorted(sha(a) for a in set(old) - set(new))

    second = meltano.state("mirror")["pinterest_audiences"][STREAM]
    assert second["customer_list_id"] == list_id
    assert second["audience_id"] == first["audience_id"] is not None
    assert second["records_added"] == 8
    assert second["records_removed"] == 6
