"""A private PostgreSQL server for the tests that restart, stop or kill it.

The sql tests share the machine's PostgreSQL on ``127.0.0.1:5432`` (``sql_databases``): a
test that restarted it would break every test running meanwhile (pytest-xdist workers).
``PostgresServerProcess`` is a server of one test module instead, in the shape of
``local_servers.ServerProcess``: ``initdb`` makes a fresh cluster in a temporary directory
(trust authentication, ``wal_level = logical``, its unix socket in that directory), the server
listens on 127.0.0.1 and a free port, and ``url`` is its database ``test``. A test may stop it
(fast or immediate), restart it or kill it; ``close`` stops it and removes the directory.

The binaries are the machine's: ``OMCONNECT_TEST_POSTGRES_BINDIR`` when set, else
``pg_config --bindir``, else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's
layout); none fails the test saying what to install. initdb and postgres refuse to run as
root (as CI runs the tests): then the directory belongs to the ``postgres`` OS user and the
binaries run as that user.

initdb and the first start take one to two seconds: share one server per module (a
module-scoped fixture), not one per test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import psycopg
import pytest

from tests.support.local_servers import free_port

__all__ = ["PostgresServerProcess", "Shutdown", "postgres_bindir"]

BINDIR_ENV = "OMCONNECT_TEST_POSTGRES_BINDIR"
_PACKAGED = Path("/usr/lib/postgresql")  # Debian and Ubuntu: <version>/bin per major version
_INSTALL = (
    "install PostgreSQL's server (Debian/Ubuntu: `apt-get install postgresql-15`) "
    f"or set {BINDIR_ENV} to the directory holding initdb and postgres"
)
_OS_USER = "postgres"  # who runs the binaries when the tests run as root
Shutdown = Literal["smart", "fast", "immediate"]
_SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    # A throw-away cluster: no fsync. Commits still reach the kernel before they return, so a
    # killed or immediately stopped server loses nothing it acknowledged.
    "fsync": "off",
    # Quiet between a test's own statements: no WAL from autovacuum or timed checkpoints, so
    # a slot's lag in bytes is the test's own doing.
    "autovacuum": "off",
    "checkpoint_timeout": "1h",
}


def _has_server(directory: Path) -> bool:
    return all((directory / name).is_file() for name in ("initdb", "postgres"))


def _version_key(directory: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", directory.name))


def postgres_bindir() -> Path:
    """The directory of the machine's ``initdb`` and ``postgres``; fails the test (never skips
    it) when there is none."""
    configured = os.environ.get(BINDIR_ENV)
    if configured:
        if not _has_server(Path(configured)):
            pytest.fail(f"{BINDIR_ENV}={configured}: no initdb and postgres there", pytrace=False)
        return Path(configured)
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            ran = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            )
            candidates.append(Path(ran.stdout.strip()))
    if _PACKAGED.is_dir():
        versions = [path for path in _PACKAGED.iterdir() if re.fullmatch(r"\d+", path.name)]
        candidates += [version / "bin" for version in sorted(versions, key=_version_key)[::-1]]
    for candidate in candidates:
        if _has_server(candidate):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "no pg_config on PATH"
    pytest.fail(
        f"no PostgreSQL server binaries (initdb, postgres) found ({looked}): {_INSTALL}",
        pytrace=False,
    )


def _os_user() -> pwd.struct_passwd | None:
    """The OS user to run the binaries as: ``postgres`` as root, else None (this user)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_OS_USER)
    except KeyError:
        pytest.fail(
            f"the tests run as root, and initdb and postgres refuse to: they run as the OS user "
            f"`{_OS_USER}`, which does not exist ({_INSTALL}, or `useradd --system {_OS_USER}`)",
            pytrace=False,
        )


def _processes() -> dict[int, tuple[str, int]]:
    """Every process's state and parent (from ``/proc``)."""
    found: dict[int, tuple[str, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        found[int(stat.parent.name)] = (fields[0], int(fields[1]))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it holds no memory any more)."""
    state = _processes().get(pid)
    return state is not None and state[0] not in "ZXx"


class PostgresServerProcess:
    """A private PostgreSQL server on a free loopback port: its cluster (``data``), unix socket
    and log (``server.log``) under a temporary ``directory``. ``start`` makes the cluster on
    its first call; use it as a context manager (or call ``close``) to remove it all."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self._user = _os_user()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._created = False
        self.directory = Path(tempfile.mkdtemp(prefix="omct-pg-"))  # last: ``close`` removes it

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def socket_directory(self) -> Path:
        return self.directory / "socket"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The ``postgresql://`` URL of its database ``test``, as the superuser ``postgres``."""
        return f"postgresql://postgres@{self.address}/test"

    def __enter__(self) -> PostgresServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start it (again, on the same port and cluster) and wait until it accepts
        connections, recovery included; the first start makes the cluster and ``test``."""
        if not self._created:
            self._initdb()
        for _ in range(3):
            self.process = self._popen([str(self.bindir / "postgres"), "-D", str(self.data)])
            if self._wait_until_ready(timeout):
                break
            log = self._log_tail()
            if self._created or "could not bind" not in log:
                pytest.fail(f"PostgreSQL did not start:\n{log}", pytrace=False)
            self.port = free_port()  # taken meanwhile (another worker): ``url`` is not out yet
            self._write_settings()
            self.log.unlink()
        else:
            pytest.fail(f"PostgreSQL found no free port:\n{self._log_tail()}", pytrace=False)
        if not self._created:
            with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
                connection.execute("CREATE DATABASE test")
            self._created = True

    def stop(self, mode: Shutdown = "fast", timeout: float = 60) -> None:
        """Shut it down: ``fast`` (rolls back sessions; walsenders first send the WAL they
        have), ``immediate`` (no checkpoint: a recovery at the next start), ``smart`` (waits
        for clients to leave). A shutdown not done after ``timeout`` seconds (a replication
        client that does not read holds a fast one) becomes immediate."""
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        process.send_signal(_SHUTDOWN_SIGNALS[mode])
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self, mode: Shutdown = "fast", timeout: float = 60) -> None:
        """``stop`` then ``start``."""
        self.stop(mode, timeout)
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and every server process (a crash, no shutdown) and wait
        until they are gone; ``start`` recovers. Each backend is its own process group, so
        they are found (in Linux's ``/proc``) as the stopped postmaster's children."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGSTOP)  # forks nothing more meanwhile
            children = [pid for pid, (_, parent) in _processes().items() if parent == process.pid]
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            deadline = time.monotonic() + 10
            while any(_running(pid) for pid in children) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        """Start it when it is not running (a test stopped or killed it)."""
        if not self.running():
            self.start()

    def close(self) -> None:
        """Stop it (immediate) and remove its directory."""
        try:
            self.stop("immediate", timeout=30)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the cluster ----------------------------------------------------------------------

    def _initdb(self) -> None:
        self.socket_directory.mkdir(mode=0o700)
        if self._user is not None:
            for directory in (self.directory, self.socket_directory):
                os.chown(directory, self._user.pw_uid, self._user.pw_gid)
        ran = self._run(
            [
                str(self.bindir / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"),
            ]
        )
        if ran.returncode != 0:
            pytest.fail(f"initdb failed:\n{ran.stdout}{ran.stderr}", pytrace=False)
        self._write_settings()

    def _write_settings(self) -> None:
        """``postgresql.conf`` gets ``_SETTINGS``, the port and the socket directory (later
        lines win: written again when the port changes)."""
        settings = {
            **_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_directory}'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _environment(self) -> dict[str, str]:
        environment = {**os.environ, "TZ": "UTC", "LC_ALL": "C"}  # TZ: initdb looks no further
        if self._user is not None:
            environment.update(HOME=self._user.pw_dir, USER=_OS_USER, LOGNAME=_OS_USER)
        return environment

    def _ids(self) -> tuple[int | None, int | None, list[int] | None]:
        """The user, group and supplementary groups to run the binaries with (None: ours)."""
        if self._user is None:
            return None, None, None
        return self._user.pw_uid, self._user.pw_gid, []

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        user, group, groups = self._ids()
        return subprocess.run(
            command,
            cwd=self.directory,
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=120,
            user=user,
            group=group,
            extra_groups=groups,
        )

    def _popen(self, command: list[str]) -> subprocess.Popen[bytes]:
        user, group, groups = self._ids()
        with self.log.open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=self.directory,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a ^C of the tests is not the server's
                user=user,
                group=group,
                extra_groups=groups,
            )

    def _dsn(self, database: str) -> str:
        return f"postgresql://postgres@{self.address}/{database}"

    def _wait_until_ready(self, timeout: float) -> bool:
        """Whether it accepts connections within ``timeout`` s (False: it exited); fails the
        test when it runs but does not accept them."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self._dsn("postgres"), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                pass
            if self.process.poll() is not None:
                self.process = None
                return False
            if time.monotonic() > deadline:
                self.stop("immediate", timeout=30)
                log = self._log_tail()
                pytest.fail(
                    f"PostgreSQL accepts no connections after {timeout:.0f}s:\n{log}", pytrace=False
                )
            time.sleep(0.05)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
