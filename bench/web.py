"""The web app under load: requests per second and 95th percentile latency for a manager's
inbox and an alert page, against a bare endpoint of the same app (/healthz: the same server,
middleware and a database round trip, no page), on SQLite and PostgreSQL.

The server is `drp serve --no-flows` (uvicorn, one process) on loopback; the load comes from
this process: CONNECTIONS keep-alive connections, each sending its next request as soon as the
last is answered, for SECONDS per endpoint (asyncio, raw HTTP/1.1, so the generator costs far
less than the server it measures). The database holds a simulated year of Manchester's alerts
(`drp simulate`, its published volumes) plus 25 open alerts waiting for one team manager, who
is the signed-in user. Each alert page view writes its access-log row, as in production. Also
recorded (no bound): the director's list of every alert of the year, its first page.

Bounds (issue 19): each page answers at least SHARE (30%) of /healthz's requests a second, with
a 95th percentile under P95_MS (50 ms) at CONNECTIONS connections, on each database; every
endpoint is warmed up (a second of load) before it is measured.

A page is answered from what the server kept while nothing it shows has changed
(drp.web.pagecache): the bounds are judged on that, the pages as a person opening them again
waits for them. Recorded beside them, without a bound, each page made anew for every request
(a second server with DRP_PAGE_CACHE_MB=0: as a page after a change to what it shows)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (  # type: ignore[import-not-found]
    ROOT,
    SMALL,
    backends,
    database_url,
    judge,
    record,
)

CONNECTIONS = 8
SECONDS = 4 if SMALL else 15
WARM_UP = 1  # seconds of load before each endpoint is measured
SHARE = 0.30  # a page's rate, at least this share of /healthz's
P95_MS = 50.0  # a page's 95th percentile latency, under this
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(env: dict[str, str]) -> tuple[str, int, str, str]:
    """Simulate the year, add a busy manager's inbox; returns (cookie, alert id, username,
    the director's cookie)."""
    scale = "0.3" if SMALL else "1"
    subprocess.run([str(BIN / "drp"), "init"], env=env, check=True, capture_output=True)
    subprocess.run([str(BIN / "drp"), "simulate", "--year", "2025", "--profile", "manchester",
                    "--scale", scale], env=env, check=True, capture_output=True)
    code = """
import json, sys
from datetime import UTC, datetime
from sqlmodel import Session, col, select
from drp import db
from drp.clock import Clock
from drp.models import Child, Council, Person, Team
from drp.runtime import runtime
from drp.keys import secret_key
from drp.web.auth import Auth, Signed

rt = runtime()
clock = Clock()
with Session(rt.engine) as s:
    team = s.exec(select(Team).where(col(Team.team_manager_id).is_not(None))).first()
    manager = s.get(Person, team.team_manager_id)
    children = list(s.exec(select(Child).where(Child.team_id == team.id, col(Child.active))))
first = None
for i in range(25):
    child = children[i % len(children)]
    with db.transaction(rt.engine) as s:
        svc = rt.service(s, clock, rt.notifier())
        iro = s.get(Person, child.iro_id).username
        alert = svc.raise_alert(iro, child.ref, f"Care plan not updated ({i})",
                                stage=rt.protocol.keys[1])
        first = first or alert.id
with Session(rt.engine) as s:
    director = s.get(Person, s.get(Council, 1).director_id or 0)
if director is None:
    sys.exit("web bench: the simulated organisation has no director")
auth, signer = Auth(rt.engine, rt.settings), Signed(secret_key(rt.settings))
token, _ = auth.start_session(manager.id, clock.now())
overseer, _ = auth.start_session(director.id, clock.now())
print(json.dumps({"cookie": signer.sign(token, "session"), "alert": first,
                  "user": manager.username,
                  "director": signer.sign(overseer, "session")}))
"""
    done = subprocess.run([str(BIN / "python"), "-c", code], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                         else "web bench: preparing the database failed")
    import json

    info: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return info["cookie"], int(info["alert"]), info["user"], info["director"]


async def _client(port: int, path: str, cookie: str, until: float,
                  latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Cookie: drp_session={cookie}\r\nAccept: text/html\r\n\r\n").encode()
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                errors.append(f"{path}: HTTP {status}")
                return
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(port: int, path: str, cookie: str, seconds: float = SECONDS) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(*[_client(port, path, cookie, until, latencies, errors)
                               for _ in range(CONNECTIONS)])

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"web bench: {errors[0]}")
    latencies.sort()
    return {"rps": len(latencies) / elapsed,
            "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000}


def _serve(env: dict[str, str], port: int, endpoints: list[tuple[str, str, str]]
           ) -> dict[str, dict[str, float]]:
    """`drp serve` with `env` on `port`, each endpoint (key, path, cookie) warmed up and
    measured in turn."""
    server = subprocess.Popen([str(BIN / "drp"), "serve", "--no-flows", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # (a busy machine starts it slowly)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("web bench: the server did not start") from None
                time.sleep(0.2)
        figures = {}
        for key, path, who in endpoints:
            load(port, path, who, WARM_UP)  # (templates compiled, caches filled)
            figures[key] = load(port, path, who)
        return figures
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database_url(kind, tmp) as url:
        port = _free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DRP_")},
               "DRP_DATABASE_URL": url, "DRP_MAIL_DIR": f"{tmp}/mail",
               "DRP_PROTOCOL": str(ROOT / "config" / "protocol.manchester.yaml"),
               "DRP_BASE_URL": f"http://127.0.0.1:{port}", "DRP_SECRET_KEY": "bench-" * 6}
        print(f"web on {kind}: simulating Manchester's year ...", flush=True)
        cookie, alert_id, user, director = prepare(env)
        pages = [("inbox", "/inbox", cookie), ("alert_page", f"/alerts/{alert_id}", cookie)]
        figures = _serve(env, port, [("bare", "/healthz", cookie), *pages,
                                     ("all_alerts", "/alerts", director)])
        # The same pages made anew for every request (no page kept: as after each change to
        # what they show), recorded without a bound.
        made = _serve({**env, "DRP_PAGE_CACHE_MB": "0"}, port, pages)
    bare, inbox, page = figures["bare"], figures["inbox"], figures["alert_page"]
    every = figures["all_alerts"]
    name = f"web_{kind}"
    print(f"  (signed in as {user}; {CONNECTIONS} connections, {SECONDS} s each)")
    return {
        f"{name}_bare_rps": round(bare["rps"], 1),
        f"{name}_bare_p95_ms": round(bare["p95_ms"], 1),
        f"{name}_inbox_rps": round(inbox["rps"], 1),
        f"{name}_inbox_p95_ms": round(inbox["p95_ms"], 1),
        f"{name}_alert_page_rps": round(page["rps"], 1),
        f"{name}_alert_page_p95_ms": round(page["p95_ms"], 1),
        # How many times slower than the bare endpoint (throughput and 95th percentile).
        f"{name}_inbox_over_bare_rps": round(bare["rps"] / inbox["rps"], 2),
        f"{name}_inbox_over_bare_p95": round(inbox["p95_ms"] / bare["p95_ms"], 2),
        f"{name}_alert_page_over_bare_rps": round(bare["rps"] / page["rps"], 2),
        f"{name}_alert_page_over_bare_p95": round(page["p95_ms"] / bare["p95_ms"], 2),
        # The bounds' own terms: a page's rate as a share of /healthz's (at least SHARE).
        f"{name}_inbox_share_of_bare_rps": round(inbox["rps"] / bare["rps"], 3),
        f"{name}_alert_page_share_of_bare_rps": round(page["rps"] / bare["rps"], 3),
        # Recorded, no bound: each page made anew (DRP_PAGE_CACHE_MB=0), its share of the
        # bare endpoint's rate measured before it.
        **{f"{name}_{key}_made_anew_{what}": round(made[key][what], 1)
           for key in ("inbox", "alert_page") for what in ("rps", "p95_ms")},
        **{f"{name}_{key}_made_anew_share_of_bare_rps": round(made[key]["rps"] / bare["rps"],
                                                              3)
           for key in ("inbox", "alert_page")},
        # Recorded, no bound: the director's list of every alert of the year (its first page
        # of 50), which reads a few columns of every alert to order them.
        f"{name}_all_alerts_rps": round(every["rps"], 1),
        f"{name}_all_alerts_p95_ms": round(every["p95_ms"], 1),
        f"{name}_all_alerts_share_of_bare_rps": round(every["rps"] / bare["rps"], 3),
    }


def missed(kind: str, figures: dict[str, Any]) -> list[str]:
    """The bounds this database's figures miss, each in words."""
    out = []
    for page, words in (("inbox", "the inbox"), ("alert_page", "an alert's page")):
        share = figures[f"web_{kind}_{page}_share_of_bare_rps"]
        p95 = figures[f"web_{kind}_{page}_p95_ms"]
        if share < SHARE:
            out.append(f"{kind}: {words} answers {share:.0%} of /healthz's requests a second"
                       f" ({figures[f'web_{kind}_{page}_rps']} against"
                       f" {figures[f'web_{kind}_bare_rps']}), under {SHARE:.0%}")
        if p95 >= P95_MS:
            out.append(f"{kind}: {words}'s 95th percentile is {p95} ms at {CONNECTIONS}"
                       f" connections, not under {P95_MS:g} ms")
    return out


def main() -> None:
    print(f"web: {CONNECTIONS} keep-alive connections, {SECONDS} s per endpoint (started"
          f" {datetime.now(UTC):%H:%M} UTC)")
    failed: list[str] = []
    for kind in backends():
        figures = measure(kind)
        record(figures)
        failed += missed(kind, figures)
    judge("web", f"each page at least {SHARE:.0%} of /healthz's rate, 95th percentile under"
                 f" {P95_MS:g} ms at {CONNECTIONS} connections, on each database", failed)


if __name__ == "__main__":
    main()
