"""Schemathesis against /openapi.json: whatever it sends, every response conforms to the
schema the app publishes (status code, content type, headers, body; every check schemathesis
has), and no response is a 5xx.

The schema describes the API's refusals (401, 403, 404, 409, and 422 as drp's sentence with
its field or FastAPI's check), so a refusal's status and body are checked like any response.
KNOWN_GAPS tolerates what the schema cannot say, narrowly: drp's 422 refusal of a value the
schema allows (blank text, an unknown stage). Anything else fails. A gap no longer seen fails
too, so the list shrinks as the schema is put right."""

from __future__ import annotations

import json
import warnings
from collections import Counter, defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.failures import Failure, FailureGroup

from drp.alerts import AlertService

from .conftest import MovableClock

pytestmark = pytest.mark.slow

EXAMPLES = 25  # per operation; derandomized, so every run sends the same requests

KNOWN_GAPS = {
    "refusal-of-schema-valid-data": "the schema allows what drp refuses with a sentence"
                                    " (blank text, an unknown stage, theme or status, no"
                                    " legal adviser, a hold ending before today): no"
                                    " minLength, enum or rule in the schema says so",
}


def drp_refusal(response: Any) -> bool:
    """A refusal written by drp.web.app's DrpError handler: {"detail": "<one sentence>"},
    with "field" (the input refused) where the service names it."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return False
    return (isinstance(body, dict) and set(body) in ({"detail"}, {"detail", "field"})
            and all(isinstance(v, str) for v in body.values())
            and 400 <= response.status_code < 500)


def known_gap(failure: Failure, response: Any) -> str | None:
    if not drp_refusal(response):
        return None
    if failure.title == "Schema-valid request rejected" and response.status_code == 422:
        return "refusal-of-schema-valid-data"
    return None


@pytest.fixture
def api(web: Any) -> tuple[Any, dict[str, str], int]:
    app, clock, rt = web
    from drp import db
    from drp.web.auth import Auth

    assert isinstance(clock, MovableClock)
    with db.transaction(rt.engine) as s:
        svc: AlertService = rt.service(s, clock)
        seeded = svc.raise_alert("iro.ada", "R100", "Seed alert for the API tests").id
    # The child's IRO: raising (and the IRO's other powers) are theirs alone.
    token = Auth(rt.engine, rt.settings).new_api_token("iro.ada", "schemathesis", clock.now())
    return app, {"Authorization": f"Bearer {token}"}, int(seeded or 0)


def test_every_api_response_matches_the_published_schema(
    api: tuple[Any, dict[str, str], int],
) -> None:
    app, headers, seeded = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, set[str]] = defaultdict(set)
    tolerated: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def check(operation: Any) -> None:
        label = f"{operation.method.upper()} {operation.path}"

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), real=st.booleans())
        def run(case: Any, real: bool) -> None:
            calls[label] += 1
            if real and isinstance(case.body, dict) and "child" in case.body:
                case.body["child"] = "R100"
                if label == "POST /api/alerts":  # R100 has the seeded alert open already
                    case.body["separate"] = True
            if real and "alert_id" in (case.path_parameters or {}):
                case.path_parameters["alert_id"] = seeded  # half the time, an alert there is
            if real and case.headers:  # generated keys repeat with other bodies: refused
                case.headers.pop("Idempotency-Key", None)  # (the key's own tests: security)
            response = case.call(headers=headers)  # a server exception propagates
            statuses[response.status_code] += 1
            try:
                case.validate_response(response)  # every check schemathesis has
            except (Failure, FailureGroup) as exc:  # collect: one report names every one
                found = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
                for failure in found:
                    gap = known_gap(failure, response)
                    if gap:
                        tolerated[gap] += 1
                    else:
                        failures[label].add(
                            f"{failure.title} ({response.status_code}): "
                            + " ".join(str(failure.message).split())[:300])

        run()

    for result in schema.get_all_operations():
        check(result.ok())
    assert dict(failures) == {}, "\n".join(f"{k}: {sorted(v)}" for k, v in failures.items())
    # Every operation was tried with many examples (those that take no input: one or two).
    assert len(calls) >= 15, dict(calls)
    for no_input in ("GET /api/me", "GET /api/cover", "GET /api/closures"):
        assert calls.pop(no_input) <= 2, (no_input, dict(calls))
    assert all(n > 12 for n in calls.values()), dict(calls)
    assert statuses[200] > 20 and statuses[201] > 0, statuses  # successes were checked too
    unseen = set(KNOWN_GAPS) - set(tolerated)
    assert not unseen, f"no longer seen: remove {sorted(unseen)} from KNOWN_GAPS"
    warnings.warn("the API schema does not describe: " + "; ".join(
        f"{KNOWN_GAPS[k]} ({n} responses)" for k, n in sorted(tolerated.items())),
        stacklevel=1)
