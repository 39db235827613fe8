"""Issue 15's load check (bounded, loopback only): `drp serve` in a process of its own, a mail
server that accepts connections and never answers, 40 sign-ins at once with random usernames
(each an argon2 check of about 0.4 s) and an alert raised through the API (its mail goes to the
silent server): /healthz keeps answering within 10 times its idle latency.

The idle latency is floored at 10 ms: on a 2-core machine busy with the rest of the suite
(three test workers, Chromium, Prefect) the sign-ins' 40 checks share the cores with everything
else, and /healthz's 95th percentile was seen at 59 and 74 ms with the checks off the loop as
they should be; a 1 ms idle figure would make the bound 10 ms, within the noise of scheduling
alone. 100 ms is still far below what a blocked event loop gives: each /healthz waits behind
the checks in hand (with the check moved onto the loop, seen failing: a median of 850 ms, a
95th percentile of 1.9 s)."""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import forget_settings, point_drp_at, prepare
from .smtp import SmtpServer, free_port
from .support.cli import wait_until_serving
from .test_outbox_delivery import HeldProxy

SIGN_INS = 40
IDLE_FLOOR = 0.010  # seconds
DRP = str(Path(sys.executable).with_name("drp"))


def timed_healthz(client: httpx.Client) -> float:
    start = time.perf_counter()
    r = client.get("/healthz")
    took = time.perf_counter() - start
    assert r.status_code == 200
    return took


def raise_alert(client: httpx.Client, token: str, summary: str) -> tuple[int, float]:
    """An alert raised through the API (its e-mails queued): the status and how long."""
    start = time.perf_counter()
    r = client.post("/api/alerts", json={"child": "R100", "summary": summary,
                                         "separate": True},
                    headers={"Authorization": f"Bearer {token}"})
    return r.status_code, time.perf_counter() - start


def paced_healthz(client: httpx.Client) -> float:
    """One sample, then 20 ms apart (a sampling interval, not a wait for anything): idle and
    under load alike, so both include the server's waking up."""
    took = timed_healthz(client)
    time.sleep(0.02)
    return took


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer) -> Any:
    """`drp serve --no-flows` on a free loopback port (database: tests/data/org.yaml, every
    password TEST_PASSWORD), mail to a server that never answers; yields (base URL, token)."""
    from drp import runtime as runtime_module
    from drp.web.auth import Auth

    point_drp_at(monkeypatch, tmp_path)
    rt = runtime_module.runtime()
    prepare(rt)
    token = Auth(rt.engine, rt.settings).new_api_token("iro.ada", "load", datetime.now(UTC))
    rt.engine.dispose()
    forget_settings()
    silent = HeldProxy(smtp.port)  # accepts, says nothing
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DRP_")},
           "DRP_DATABASE_URL": str(rt.settings.database_url),
           "DRP_MAIL_DIR": str(tmp_path / "mail"), "DRP_BASE_URL": base,
           "DRP_SMTP_HOST": "127.0.0.1", "DRP_SMTP_PORT": str(silent.port),
           "DRP_MAIL_FROM": "drp@riverside.example"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([DRP, "serve", "--no-flows", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_until_serving(base, proc, tmp_path / "serve.log")
        yield base, token, silent
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        silent.close()


def test_healthz_answers_during_forty_sign_ins_and_a_silent_mail_server(served: Any) -> None:
    base, token, silent = served
    with httpx.Client(base_url=base, timeout=60) as probe:
        # Warm up: the first alert raised loads the theme classifier (scikit-learn, seconds,
        # holding the interpreter) once per process; not what this check is about.
        assert raise_alert(probe, token, "warm-up")[0] == 201
        for _ in range(5):
            timed_healthz(probe)
        idle = statistics.median(paced_healthz(probe) for _ in range(20))
        bound = 10 * max(idle, IDLE_FLOOR)

        form = probe.get("/login")
        csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        cookies = dict(form.cookies)
        go = threading.Barrier(SIGN_INS + 2)
        answers: list[int] = []
        raised: list[tuple[int, float]] = []

        def sign_in() -> None:
            with httpx.Client(base_url=base, timeout=120, cookies=cookies) as c:
                go.wait()
                r = c.post("/login", data={"username": f"user.{secrets.token_hex(4)}",
                                           "password": "wrong-password-1",
                                           "csrf_token": csrf, "next": "/"})
                answers.append(r.status_code)

        def raise_one() -> None:  # queues mail for the silent server
            with httpx.Client(base_url=base, timeout=60) as c:
                go.wait()
                raised.append(raise_alert(c, token, "under load"))

        threads = [threading.Thread(target=sign_in) for _ in range(SIGN_INS)]
        threads.append(threading.Thread(target=raise_one))
        for t in threads:
            t.start()
        go.wait()
        start = time.perf_counter()
        busy: list[float] = []
        while len(answers) < SIGN_INS:  # /healthz every 20 ms or so while sign-ins run
            busy.append(paced_healthz(probe))
        took = time.perf_counter() - start
        for t in threads:
            t.join(60)
    assert answers == [400] * SIGN_INS  # every one checked and refused (no such person)
    assert raised and raised[0][0] == 201, raised
    assert silent.connected.wait(10)  # the mail went to the silent server, in the background
    assert took > 2, f"the sign-ins took {took:.1f} s: not a load"
    median, p95 = statistics.median(busy), statistics.quantiles(busy, n=20)[-1]
    print(f"\nidle /healthz {idle * 1000:.1f} ms (bound {bound * 1000:.0f} ms); under load"
          f" median {median * 1000:.1f} ms, 95th percentile {p95 * 1000:.1f} ms, worst"
          f" {max(busy) * 1000:.0f} ms over {len(busy)} requests in {took:.1f} s; the alert"
          f" answered in {raised[0][1] * 1000:.0f} ms")
    # The median and the 95th percentile: on a shared 2-core machine the operating system
    # alone holds back a few requests past any bound; a blocked loop holds back most of them.
    for name, value in (("median", median), ("95th percentile", p95)):
        assert value <= bound, (
            f"/healthz's {name} was {value * 1000:.0f} ms during the sign-ins: more than 10x"
            f" its idle {idle * 1000:.1f} ms (floored at {IDLE_FLOOR * 1000:.0f} ms)")
    assert len(busy) >= 20, f"/healthz answered {len(busy)} times in {took:.1f} s"
    assert raised[0][1] <= 5, raised  # the request did not wait for the mail server
