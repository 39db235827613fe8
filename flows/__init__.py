"""Prefect 3 flows: timescales, the fortnightly digest, themes; and serving them on schedules.

Flows are thin: each calls the service layer through a few coarse tasks that do set-based
work, and leaves a markdown artifact saying what it did. Idempotency (guards on the alert and
unique outbox keys), not the scheduler, guarantees that nothing happens twice."""

import os
from pathlib import Path
from typing import Any


def prefect_home(settings: Any) -> None:
    """Keep Prefect's own state beside drp's (./var/prefect) unless the operator chose a
    place or a server (PREFECT_HOME, PREFECT_API_URL). Prefect reads only its environment,
    so this is the one place drp writes to it, before Prefect is first imported."""
    # No telemetry: councils' servers often have no way out, and children's services should
    # not phone home.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A temporary (ephemeral) Prefect server takes 5-20 s to start on a busy two-core machine,
    # and Prefect 3.9 gives up at 20 s: `drp flows run` then failed with nothing but
    # "Stopping temporary server" (seen in the test suite under load). Allow two minutes.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if "PREFECT_HOME" not in os.environ and "PREFECT_API_URL" not in os.environ:
        db_path = Path(str(settings.database_url).removeprefix("sqlite:///"))
        base = db_path.parent if settings.database_url.startswith("sqlite:///") else Path("var")
        os.environ["PREFECT_HOME"] = str((base / "prefect").resolve())
