"""Schemathesis against /openapi.json: whatever it sends, no response is a 5xx, and the
responses match the schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from drp.alerts import AlertService

from .conftest import MovableClock


@pytest.fixture
def api(web: Any) -> tuple[Any, dict[str, str]]:
    app, clock, rt = web
    from drp import db
    from drp.web.auth import Auth

    assert isinstance(clock, MovableClock)
    with db.transaction(rt.engine) as s:
        svc: AlertService = rt.service(s, clock)
        svc.raise_alert("iro.ada", "R100", "Seed alert for the API tests")
    token = Auth(rt.engine, rt.settings).new_api_token("irom.cat", "schemathesis", clock.now())
    return app, {"Authorization": f"Bearer {token}"}


def test_no_request_to_the_api_gets_a_server_error(api: tuple[Any, dict[str, str]]) -> None:
    app, headers = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    failures: list[str] = []

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except Exception as exc:  # collect, so one report names every operation that failed
            failures.append(f"{case.method} {case.formatted_path}: {exc}"[:300])

    for operation in schema.get_all_operations():
        op = operation.ok()
        strategy = op.as_strategy()
        from hypothesis import given

        given(case=strategy)(run)()
    assert failures == []
