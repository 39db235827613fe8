"""`drp` as a user runs it, for the tests: in this process (drp.cli.main with the process's
arguments, environment, working directory and streams, as the `drp` script runs it) or, for
what only a shell sees, as a real process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

DRP = str(Path(sys.executable).with_name("drp"))
Result = subprocess.CompletedProcess[str]


_open: list[Cli] = []


def close_all() -> None:
    """Close every Cli still open (conftest does it after each test: none leaks its
    environment or settings into the next test, whether or not the test closed it)."""
    while _open:
        _open[-1].close()


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRP_")}
        self.env.update(
            DRP_DATABASE_URL=f"sqlite:///{tmp / 'drp.db'}", DRP_MAIL_DIR=str(tmp / "mail"),
            COLUMNS="200", DRP_ALLOW_FUTURE_NOW="1",  # the tests' dates are ahead
        )
        self.cwd = tmp
        self._mp = pytest.MonkeyPatch()
        self._applied: dict[str, str] | None = None
        _open.append(self)

    def __call__(self, *args: str, code: int = 0) -> Result:
        """`drp args...` in this process: what the script would print, and its exit status."""
        from drp import cli

        self._apply()
        out, err = StringIO(), StringIO()
        old, returncode = sys.argv, 0
        sys.argv = ["drp", *args]
        try:
            with redirect_stdout(out), redirect_stderr(err):
                cli.main()
        except SystemExit as exc:
            returncode = exc.code if isinstance(exc.code, int) else 1 if exc.code else 0
        finally:
            sys.argv = old
        proc = Result([DRP, *args], returncode, out.getvalue(), err.getvalue())
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        return proc

    def process(self, *args: str, code: int = 0) -> Result:
        """`drp args...` as a real process (the installed script), for what only a shell sees."""
        proc = subprocess.run([DRP, *args], capture_output=True, text=True, env=self.env,
                              cwd=self.cwd, timeout=60)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        return proc

    def _apply(self) -> None:
        """The environment a process would have (drp reads its settings once per process:
        forgotten whenever the environment changes)."""
        if self._applied == self.env:
            return
        if self not in _open:
            _open.append(self)  # used again after close(): closed again after the test
        for key in [k for k in os.environ if k.startswith("DRP_") and k not in self.env
                    and k != "DRP_TEST_POSTGRES_URL"]:
            self._mp.delenv(key)
        for key, value in self.env.items():
            if os.environ.get(key) != value:
                self._mp.setenv(key, value)
        self._mp.chdir(self.cwd)
        self._forget()
        self._applied = dict(self.env)

    @staticmethod
    def _forget() -> None:
        from drp import runtime, settings

        if runtime.runtime.cache_info().currsize:
            runtime.runtime().engine.dispose()  # closes the file (copied or removed next)
        settings.get_settings.cache_clear()
        runtime.runtime.cache_clear()

    def close(self) -> None:
        if self in _open:
            _open.remove(self)
        if self._applied is not None:
            self._forget()
        self._mp.undo()
        self._applied = None

    def json(self, *args: str) -> Any:
        proc = self(*args, "--json")
        return json.loads(proc.stdout)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.cwd / "drp.db")) as connection:
            return connection.execute(sql).fetchall()

    def refused(self, *args: str, process: bool = False) -> str:
        proc = (self.process if process else self)(*args, code=1)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert proc.stdout == ""
        return lines[0]



def prepare_folder(folder: Path, org_file: Path) -> None:
    """What a new user runs (init twice: safe; the organisation loaded), and the theme
    classifier the first `drp alert raise` trains (kept in ./models beside the mail folder, as
    drp keeps it, so a copy of the folder loads it instead of training it again)."""
    from drp import runtime

    c = Cli(folder)
    try:
        c("init")
        c("init")  # twice is safe
        c("org", "load", str(org_file))
        runtime.runtime().classifier()
        assert list((folder / "models").glob("themes-*.pickle"))
    finally:
        c.close()


def wait_until_serving(base: str, proc: subprocess.Popen[bytes], log: Path,
                       seconds: float = 120) -> None:
    """Until `drp serve` (proc) answers /healthz at `base` (a process starting: nothing to
    wait on but polling); fails with its log if it exits, or after `seconds`."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"drp serve did not answer within {seconds:.0f} s"
        time.sleep(0.1)
