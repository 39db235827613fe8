"""The tools CI promises (PostgreSQL, Chromium, Graphviz, a Prefect server). Locally a test
that needs a missing one skips, saying what is missing and how to get it; with
DRP_TEST_STRICT=1 (set by .ci/run) it fails instead, so CI never passes by skipping what it
claims to run."""

from __future__ import annotations

import os
import re
from typing import NoReturn

import pytest

STRICT = os.environ.get("DRP_TEST_STRICT", "") not in ("", "0")

# Skip reasons that mean a promised tool is missing (the safety net in conftest turns any such
# skip into a failure in strict mode, even one raised by code that does not call missing()).
PROMISED = re.compile(r"postgres|DRP_TEST_POSTGRES_URL|pg_ctl|initdb|chromium|playwright"
                      r"|graphviz|\bdot\b|prefect", re.IGNORECASE)


def missing(tool: str, why: str, how: str) -> NoReturn:
    """Skip (locally) or fail (DRP_TEST_STRICT=1) because `tool` is missing: `why` says what
    was found, `how` how to provide it."""
    if STRICT:
        pytest.fail(f"DRP_TEST_STRICT=1: CI promises {tool}, but {why}; {how}", pytrace=False)
    pytest.skip(f"{tool} missing: {why}; {how}")
