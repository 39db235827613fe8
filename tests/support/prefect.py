"""Prefect servers for the tests: `prefect server start` from drp's venv with its own
PREFECT_HOME on a free port, and the one such server a whole test session shares.

The shared server: the first test that asks for it (in whichever xdist worker) starts it,
under a file lock in the session's base temporary folder, so both workers and a run without
xdist use one server; the controller stops it (its process tree) once, at the very end
(tests/conftest.py pytest_unconfigure). A watchdog stops it too if the controller dies first.

Why one: Prefect's events and log workers are process-wide and read PREFECT_API_URL once, when
first used; a test process that ran flows against a server that then went away queued events
for it and drained them at a minute each, without bound, at exit. Every flow a test process
runs goes to this server, which outlives the test processes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..smtp import free_port

BIN = Path(sys.executable).parent
PREFECT = BIN / "prefect"
START_SECONDS = 180  # `prefect server start` takes 10-60 s on a busy two-core machine
DRAIN_SECONDS = 30  # the bound on sending a test process's last events and logs at its end

# A test server needs only what a temporary (ephemeral) server runs: the services that
# schedule, time out or clean up runs are off (they cost CPU all session; the server of
# tests/test_prefect_production.py keeps them, its automation needs them).
QUIET_SERVICES = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in (
    "SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
    "REPOSSESSOR", "CLEANUP_RECONCILER")}


def server_env(home: Path, api: str) -> dict[str, str]:
    """This process's environment without any PREFECT_* or DRP_* of the shell's, for a
    server (and its clients) at `api` with its state in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DRP_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def launch(args: list[str], env: dict[str, str], log: Path, cwd: Path,
           ) -> subprocess.Popen[bytes]:
    """A long-running `prefect ...` in a session of its own (so it can be killed with its
    children), logging to `log`."""
    if not PREFECT.exists():
        pytest.fail(f"no prefect command beside {sys.executable}: `make install` installs it")
    with open(log, "ab") as out:
        return subprocess.Popen([str(PREFECT), *args], env=env, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"({log} unreadable: {exc})"


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_pid_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (Prefect starts each flow run in a session
    of its own, so a process group is not enough)."""
    for each in [pid, *descendants(pid)]:
        with suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """kill_pid_tree for a child of this process, reaped (bounded)."""
    kill_pid_tree(proc.pid)
    proc.wait(timeout=30)


def wait_for(what: str, check: Callable[[], Any], seconds: float,
             logs: Callable[[], str] | None = None, every: float = 0.5) -> Any:
    """Poll `check` until it returns something true, or fail after `seconds` (a deadline,
    not a sleep: it returns as soon as the thing is so)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds:.0f} s for {what}\n{logs() if logs else ''}")
        time.sleep(every)  # a polling interval, not synchronisation


# --- the session's shared server ----------------------------------------------------------
def session_root(config: pytest.Config) -> Path:
    """The session's base temporary folder, the same in the controller and in each xdist
    worker (a worker's own is a folder in it)."""
    base: Path = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return base.parent if hasattr(config, "workerinput") else base


def owner_pid(config: pytest.Config) -> int:
    """The process whose end ends the session: the controller (an xdist worker's parent)."""
    return os.getppid() if hasattr(config, "workerinput") else os.getpid()


def _folder(root: Path) -> Path:
    return root / "prefect-shared"


_started: list[subprocess.Popen[bytes]] = []  # reaped here when this process stops them


def shared_api(root: Path, owner: int) -> str:
    """The shared server's API URL, starting it if no process of this session has."""
    folder = _folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / "server.json"
    # Blocks while another worker starts it: bounded by that worker's START_SECONDS.
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state.exists():
            found = json.loads(state.read_text())
        else:
            found = _start(folder, owner)
            state.write_text(json.dumps(found))
    if "error" in found:
        pytest.fail(found["error"], pytrace=False)
    if not healthy(found["api"]):
        pytest.fail(f"the session's Prefect server at {found['api']} no longer answers;"
                    f" {folder / 'server.log'} ends:\n{tail(folder / 'server.log')}",
                    pytrace=False)
    return str(found["api"])


def _start(folder: Path, owner: int) -> dict[str, Any]:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**server_env(folder / "home", api), **QUIET_SERVICES}
    log = folder / "server.log"
    proc = launch(["server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log,
                  folder)
    _started.append(proc)
    watchdog = subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(owner), str(proc.pid)],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_SECONDS
    while not healthy(api):
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (f"exited with status {proc.returncode}" if proc.poll() is not None
                   else f"did not answer within {START_SECONDS} s")
            kill_tree(proc)
            watchdog.kill()
            watchdog.wait(timeout=30)
            return {"error": f"the tests' Prefect server (prefect server start --port {port})"
                             f" {why}; {log} ends:\n{tail(log)}"}
        time.sleep(0.5)  # a polling interval, not synchronisation
    return {"api": api, "pid": proc.pid, "watchdog": watchdog.pid}


# Run beside the server: when the session's controller ends (however: Ctrl-C, a crash,
# SIGKILL), the server's process tree goes too. It waits on a pidfd, not by polling.
WATCHDOG = """
import os, select, signal, sys
owner, server = int(sys.argv[1]), int(sys.argv[2])
try:
    select.select([os.pidfd_open(owner)], [], [])
except ProcessLookupError:
    pass
try:
    os.killpg(server, signal.SIGKILL)  # the server began a session (a group) of its own
except ProcessLookupError:
    pass
"""


def stop_shared(config: pytest.Config) -> None:
    """Stop the shared server if this session started one: its process tree, and its
    watchdog. Bounded: SIGKILL, and only this process's own children are waited for."""
    if getattr(config, "_tmp_path_factory", None) is None or (
            config._tmp_path_factory._basetemp is None):  # type: ignore[attr-defined]
        return  # no temporary folder made: no test asked for the server
    state = _folder(session_root(config)) / "server.json"
    if not state.exists():
        return
    found = json.loads(state.read_text())
    if "pid" in found:
        kill_pid_tree(found["pid"])
        with suppress(ProcessLookupError):
            os.kill(found["watchdog"], signal.SIGKILL)
    state.write_text(json.dumps({"error": "the session's Prefect server was stopped"}))
    for proc in _started:  # started in this very process (a run without xdist)
        proc.wait(timeout=30)
    _started.clear()


def drain_prefect(seconds: float = DRAIN_SECONDS) -> str | None:
    """Send what this process's Prefect events and log workers still hold, waiting at most
    `seconds` for each (Prefect's own drain at exit waits without bound). None when done,
    otherwise what was left."""
    if "prefect" not in sys.modules:
        return None
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    left = []
    for service in (APILogWorker, EventsWorker):
        outcome = service.drain_all(timeout=seconds)
        if isinstance(outcome, tuple) and outcome[1]:
            left.append(f"{service.__name__}: {len(outcome[1])} not drained in {seconds} s")
    return "; ".join(left) or None
