"""drp's timescale run against a peer: SpiffWorkflow 3, a BPMN engine, doing the same
escalations (issue 19, point 6).

The peer runs in a virtual environment of its own, made by this benchmark under
var/bench-peer/ (kept between runs; remade when PEER_REQUIREMENTS change) with SpiffWorkflow
and psycopg from the package registry at pinned versions. drp's ladder (config/protocol.yaml:
its stages, working-day timescales and what happens when each is overdue) is written as BPMN
(`ladder_bpmn`): an entry script task per stage (sets the stage, its due instant from the
working-day timescale, and the notices), a user task per stage for the responsible person, a
timer boundary event on it at the due instant (interrupting, to the next stage's entry, where
the protocol says `escalate`; non-interrupting, to a reminder for the IRO, where it says
`remind_iro` or `consider_cafcass`), and a gateway after the user task (resolved, or escalated
by the IRO). bench/peer_spiff/worker.py stores instances as the serializer's JSON with an
indexed due column and measures its timer pass; see its docstring.

Both sides get the same layout and scale as timescales.py (its `bulk_alerts`, sizes and due
set: 10k and 100k alerts with 500 due at BENCH_SCALE=small; 10k, 100k and 1M with 2,000 due),
best of three runs on fresh due sets, on SQLite and, where DRP_BENCH_POSTGRES_URL answers,
PostgreSQL. drp's run is measured here, in the same process run, beside the peer's.

Figures: `peer_spiff_<db>_<size>_per_due_alert_ms` (the peer's pass over its due set),
`peer_spiff_<db>_<size>_drp_per_due_alert_ms` (drp's timescale run over its), and
`peer_spiff_<db>_<size>_drp_over_peer` (below 1: drp is faster)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import venv
from datetime import UTC, date, datetime
from pathlib import Path
from xml.sax.saxutils import escape

from common import (  # type: ignore[import-not-found]
    PG_URL,
    ROOT,
    backends,
    bulk_alerts,
    database,
    record,
    release_set,
    timed,
)
from timescales import DUE, SIZES, TODAY, TRIALS, run  # type: ignore[import-not-found]

from drp import db
from drp.calendar import WorkingCalendar
from drp.ladder.protocol import Protocol, load_protocol
from drp.notify import Notifier
from drp.settings import CONFIG_DIR
from notifications.render import Renderer

PEER_REQUIREMENTS = ["SpiffWorkflow==3.2.0", "lxml==6.1.3", "psycopg[binary]==3.3.9",
                     "typing_extensions==4.16.0"]
PEER_DIR = ROOT / "var" / "bench-peer"
WORKER = Path(__file__).resolve().parent / "peer_spiff" / "worker.py"


def peer_python() -> Path:
    """The peer's interpreter, its virtual environment made (or remade) first."""
    home = PEER_DIR / "venv"
    python = home / "bin" / "python"
    stamp = home / ".requirements"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"peer: making its virtual environment in {home} ...", flush=True)
    venv.EnvBuilder(clear=True, with_pip=True).create(home)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
                   check=True)
    stamp.write_text(wanted)
    return python


def ladder_bpmn(protocol: Protocol) -> str:
    """The protocol's ladder as BPMN 2.0 that SpiffWorkflow executes."""
    stages = protocol.stages
    out: list[str] = []
    flows: list[tuple[str, str, str | None]] = []  # (source, target, condition)

    def notices(i: int) -> list[str]:
        s = stages[i]
        return [str(r.value) for r in (s.responsible, *s.also_notify)] + ["iro", "iro_manager"]

    out.append('<bpmn:startEvent id="start"/>')
    flows.append(("start", f"escalate_{stages[0].key}", None))
    for i, stage in enumerate(stages):
        key, days = stage.key, stage.timescale_working_days
        script = (f"stage = {key!r}\ndue_at = due_after(today(), {days})\n"
                  f"notices = {notices(i)!r}")
        out.append(f'<bpmn:scriptTask id="escalate_{key}" name="Enter {escape(stage.title)}">'
                   f"<bpmn:script>{escape(script)}</bpmn:script></bpmn:scriptTask>")
        flows.append((f"escalate_{key}", key, None))
        out.append(f'<bpmn:userTask id="{key}" name="{escape(stage.title)}"/>')
        nxt = stages[i + 1].key if i + 1 < len(stages) else None
        escalates = stage.when_overdue == "escalate" and nxt is not None
        out.append(
            f'<bpmn:boundaryEvent id="timer_{key}" attachedToRef="{key}"'
            f' cancelActivity="{"true" if escalates else "false"}">'
            '<bpmn:timerEventDefinition><bpmn:timeDate xsi:type="bpmn:tFormalExpression">'
            "due_at</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:boundaryEvent>")
        if escalates:
            flows.append((f"timer_{key}", f"escalate_{nxt}", None))
        else:  # remind_iro / consider_cafcass: the IRO decides; the stage stays open
            remind = f"notices = ['iro', 'iro_manager']\nreason = {stage.when_overdue!r}"
            out.append(f'<bpmn:scriptTask id="remind_{key}"><bpmn:script>{escape(remind)}'
                       f'</bpmn:script></bpmn:scriptTask><bpmn:endEvent id="reminded_{key}"/>')
            flows += [(f"timer_{key}", f"remind_{key}", None),
                      (f"remind_{key}", f"reminded_{key}", None)]
        out.append(f'<bpmn:exclusiveGateway id="decide_{key}" default="f_{key}_resolved"/>'
                   f'<bpmn:endEvent id="resolved_{key}"/>')
        flows.append((key, f"decide_{key}", None))
        out.append(f'<bpmn:sequenceFlow id="f_{key}_resolved" sourceRef="decide_{key}"'
                   f' targetRef="resolved_{key}"/>')
        if nxt is not None:
            flows.append((f"decide_{key}", f"escalate_{nxt}", "outcome == 'escalate'"))
    for n, (source, target, condition) in enumerate(flows):
        cond = (f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                f"{escape(condition)}</bpmn:conditionExpression>") if condition else ""
        out.append(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{source}" targetRef="{target}">'
                   f"{cond}</bpmn:sequenceFlow>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="drp_ladder"'
        ' targetNamespace="https://drp.example/bench">\n'
        f'<bpmn:process id="ladder" name="{escape(protocol.name)}" isExecutable="true">\n'
        + "\n".join(out) + "\n</bpmn:process>\n</bpmn:definitions>\n")


def holidays(cal: WorkingCalendar) -> list[str]:
    """The non-working weekdays the peer's working-day arithmetic skips (drp's calendar)."""
    year = date.today().year
    days = (date.fromordinal(d) for d in range(date(year - 1, 1, 1).toordinal(),
                                                 date(year + 2, 1, 1).toordinal()))
    return [d.isoformat() for d in days if d.weekday() < 5 and not cal.is_working_day(d)]


def peer(python: Path, bpmn: Path, kind: str, total: int, cal: WorkingCalendar) -> dict:
    """The peer's figures at one size, on a fresh database of that kind."""
    with tempfile.TemporaryDirectory() as tmp:
        job = {"kind": kind, "bpmn": str(bpmn), "total": total, "due": DUE,
               "trials": TRIALS, "holidays": holidays(cal), "path": f"{tmp}/peer.db"}
        if kind == "sqlite":
            return _worker(python, job, tmp)
        assert PG_URL
        with db.temporary_schema(PG_URL, "bench_peer_") as url:
            # the same server and schema, as a libpq conninfo for psycopg
            job["conninfo"] = url.replace("postgresql+psycopg://", "postgresql://")
            return _worker(python, job, tmp)


def _worker(python: Path, job: dict, tmp: str) -> dict:
    path = Path(tmp) / "job.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([str(python), str(WORKER), str(path)], capture_output=True,
                          text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"peer_spiff: the peer's worker failed ({kind_size(job)})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def kind_size(job: dict) -> str:
    return f"{job['kind']}, {job['total']:,} instances"


def drp_run(kind: str, total: int, cal: WorkingCalendar) -> float:
    """drp's timescale run as timescales.py measures it: the same bulk alerts and due set,
    best of TRIALS runs on fresh due sets."""
    notifier = Notifier(renderer=Renderer(), base_url="https://drp.example")
    with database(kind) as (engine, protocol):
        bulk_alerts(engine, total, DUE, TODAY, cal, spare_sets=TRIALS - 1)
        best = float("inf")
        for trial in range(TRIALS):
            if trial:
                assert release_set(engine, DUE) == DUE
            instant = datetime(2027, 3, 9, 8, trial, tzinfo=UTC)
            seconds, report = timed(lambda i=instant: run(engine, protocol, cal, notifier, i))
            assert len(report.escalated) == DUE and not report.problems, report.counts()
            best = min(best, seconds)
    return best


def main() -> None:
    protocol = load_protocol(CONFIG_DIR / "protocol.yaml")
    python = peer_python()
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m;"
                              "print(m.version('SpiffWorkflow'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    bpmn = PEER_DIR / "ladder.bpmn"
    text = ladder_bpmn(protocol)
    bpmn.write_text(text)
    cal = WorkingCalendar()
    print(f"peer_spiff: SpiffWorkflow {version} against drp's timescale run, due set {DUE},"
          f" sizes {', '.join(label for _, label in SIZES)}; ladder BPMN at {bpmn}"
          f" (sha256 {hashlib.sha256(text.encode()).hexdigest()[:12]})", flush=True)
    record({"peer_spiff_version": version,
            "peer_spiff_load_average": round(os.getloadavg()[0], 2)})
    for kind in backends():
        for total, label in SIZES:
            print(f"peer_spiff on {kind}, {label}: drp ...", flush=True)
            drp_s = drp_run(kind, total, cal)
            print(f"peer_spiff on {kind}, {label}: SpiffWorkflow ...", flush=True)
            got = peer(python, bpmn, kind, total, cal)
            name = f"peer_spiff_{kind}_{label}"
            record({
                f"{name}_per_due_alert_ms": round(got["run_s"] / DUE * 1000, 3),
                f"{name}_run_s": round(got["run_s"], 3),
                f"{name}_nothing_due_probe_ms": round(got["probe_s"] * 1000, 3),
                f"{name}_instance_json_bytes": got["json_bytes"]["open"],
                f"{name}_outbox_rows_per_escalation": got["outbox_per_instance"],
                **{f"{name}_{part}_ms_a_due_alert": round(seconds / DUE * 1000, 3)
                   for part, seconds in got["split_s"].items()},
                f"{name}_drp_run_s": round(drp_s, 3),
                f"{name}_drp_per_due_alert_ms": round(drp_s / DUE * 1000, 3),
                f"{name}_drp_over_peer": round(drp_s / got["run_s"], 2),
            })


if __name__ == "__main__":
    main()
