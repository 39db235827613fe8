"""The acceptance scenario for mail, as a user runs it: commands against a real SMTP server
that is stopped and started in the middle; every message arrives once, nothing is left."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .conftest import DATA
from .smtp import SmtpServer
from .test_cli import Cli


def test_mail_survives_an_smtp_outage_and_arrives_once(tmp_path: Path, smtp: SmtpServer) -> None:
    cli = Cli(tmp_path)
    cli.env.update(DRP_SMTP_HOST="127.0.0.1", DRP_SMTP_PORT=str(smtp.port),
                   DRP_MAIL_FROM="drp@riverside.example", DRP_BASE_URL="https://drp.example",
                   DRP_MAIL_DETAIL="summary")  # the summary in the e-mail, escaped
    cli("init")
    cli("org", "load", str(DATA / "org.yaml"))
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "<b>No plan</b>",
        "--now", "2026-03-02T09:00")
    assert len(smtp.received) == 3
    smtp.stop()
    step = cli("alert", "escalate", "1", "--as", "iro.ada", "--reason", "No response",
               "--now", "2026-03-03T09:00")
    assert "mail:" in step.stderr and "wait in the outbox" in step.stderr  # but it succeeded
    cli("alert", "escalate", "1", "--as", "iro.ada", "--reason", "Still none",
        "--now", "2026-03-04T09:00")
    waiting = cli.json("outbox", "list")
    assert len(waiting) == 8 and {m["status"] for m in waiting} == {"pending"}
    smtp.start()
    assert "8 sent" in cli("outbox", "send").stdout
    assert cli("outbox", "list").stdout.strip() == "The outbox is empty: everything was sent."
    cli("outbox", "send")
    assert len(smtp.received) == 11
    assert max(Counter(str(r.message["Message-ID"]) for r in smtp.received).values()) == 1
    hos = smtp.to("ivy@riverside.example")
    assert [r.subject for r in hos] == [
        "[drp] Respond by 11 March: alert 1 (R100) escalated to Stage 2"]
    assert "&lt;b&gt;No plan&lt;/b&gt;" in hos[0].part("html")
    assert "https://drp.example/alerts/1" in hos[0].part("plain")


def test_without_an_smtp_host_mail_is_written_to_files(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("init")
    cli("org", "load", str(DATA / "org.yaml"))
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--now", "2026-03-02T09:00")
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 3
    assert ("Subject: [drp] Respond by 9 March: alert 1 (R100) raised at Informal resolution"
            in " ".join(files[0].read_text().split()))  # (a long header is folded)


def test_mail_preview_and_a_missing_address(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("mail", "preview", "escalated").stdout.startswith(
        "Subject: [drp] Respond by 9 March: alert 17 (C1001) escalated to Stage 2")
    assert "there is no message 'nope'" in cli.refused("mail", "preview", "nope")
    # A council's own wording that is broken: one line naming the template, no traceback.
    (tmp_path / "wording").mkdir()
    (tmp_path / "wording" / "escalated.txt").write_text(
        '{% extends "base.txt" %}{% block subject %}{{ nothing.here }}{% endblock %}')
    cli.env["DRP_TEMPLATES_DIR"] = str(tmp_path / "wording")
    assert cli.refused("mail", "preview", "escalated") == (
        "drp: the 'escalated' template cannot be rendered: 'nothing' is undefined; correct it"
        " in DRP_TEMPLATES_DIR")
    del cli.env["DRP_TEMPLATES_DIR"]
    cli("init")
    org = (DATA / "org.yaml").read_text().replace(", email: fay@riverside.example", "")
    (tmp_path / "org.yaml").write_text(org)
    cli("org", "load", str(tmp_path / "org.yaml"))
    raised = cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
                 "--now", "2026-03-02T09:00")
    assert "tm.fay has no e-mail address" in raised.stderr
    failed = cli.json("outbox", "list", "--failed")
    assert [m["to"] for m in failed] == ["tm.fay"]
    cli("org", "load", str(DATA / "org.yaml"))  # the address is added
    assert "Retried 1 message(s): 1 sent" in cli("outbox", "retry", "--all-failed").stdout
