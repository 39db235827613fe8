"""Prefect 3 flows: timescales, the fortnightly digest, themes; and serving them on schedules.

Flows are thin: each calls the service layer through a few coarse tasks that do set-based
work, and leaves a markdown artifact saying what it did. Idempotency (guards on the alert and
unique outbox keys), not the scheduler, guarantees that nothing happens twice."""

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

# What to do when Prefect's API does not answer: said once, by `drp flows run` and
# `drp flows serve` alike (README "The flows", docs/deploying.md).
LONG_LIVED = ("set PREFECT_API_URL to a long-lived Prefect server (docs/deploying.md), or"
              " allow the temporary one longer"
              " (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")


def prefect_home(settings: Any) -> None:
    """Keep Prefect's own state beside drp's (./var/prefect) unless the operator chose a
    place or a server (PREFECT_HOME, PREFECT_API_URL). Prefect reads only its environment,
    so this is the one place drp writes to it, before Prefect is first imported."""
    # No telemetry: councils' servers often have no way out, and children's services should
    # not phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A temporary (ephemeral) Prefect server takes 5-30 s to start on a busy two-core machine,
    # and Prefect 3.9 gives up at 20 s: `drp flows run` then failed with nothing but
    # "Stopping temporary server" (seen in the test suite under load). Allow two minutes.
    # (Prefect 3.9's setting server.ephemeral.startup_timeout_seconds; Prefect reads it when
    # first imported, which is after this.)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if "PREFECT_HOME" not in os.environ and "PREFECT_API_URL" not in os.environ:
        db_path = Path(str(settings.database_url).removeprefix("sqlite:///"))
        base = db_path.parent if settings.database_url.startswith("sqlite:///") else Path("var")
        os.environ["PREFECT_HOME"] = str((base / "prefect").resolve())


def start_api() -> str | None:
    """Make sure Prefect's API answers, starting the temporary server unless PREFECT_API_URL
    names a long-lived one. None when it answers; otherwise one line saying what went wrong
    and what to do (the temporary server, if it was half-started, is stopped so that the next
    attempt starts afresh)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    url = PREFECT_API_URL.value()
    quiet = logging.getLogger("prefect")  # "Starting temporary server..." is not news
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    # Prefect reads its settings when first imported: in a process that had imported it
    # before prefect_home() ran, its own 20 s would stand. Apply the environment's now.
    wanted = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    limit = temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: wanted}
                               ) if wanted and not url else contextlib.nullcontext()
    try:
        with limit:
            seconds = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
            try:
                with get_client(sync_client=True) as client:
                    problem = client.api_healthcheck()
            except Exception as exc:  # Prefect raises RuntimeError, ValueError, httpx errors
                problem = exc
        if problem is None:
            return None
        if not url:
            _stop_temporary_server()
    finally:
        quiet.setLevel(level)
    reason = " ".join(str(problem).split())[:200] or type(problem).__name__
    if url:
        return (f"the Prefect server at {url} (PREFECT_API_URL) does not answer ({reason});"
                " start it, or check the address")
    return (f"Prefect's temporary server did not start within {seconds} s ({reason});"
            f" {LONG_LIVED}")


def _stop_temporary_server() -> None:
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().stop()
