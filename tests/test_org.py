from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from drp import db
from drp.errors import ConfigError
from drp.ladder.protocol import Protocol
from drp.models import Child, Person, PersonRole, Team
from drp.org import load_org

from .conftest import DATA, backends

ORG = (DATA / "org.yaml").read_text()
LAST = "{ref: R200, team: west-a, iro: iro.ben, social_worker: sw.eve}\n"
COVER = "cover:\n  - {person: tm.fay, deputy: tm.gus, from: 2027-03-01, to: 2027-03-05}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(text)
    return path


def load(engine: Engine, path: Path, protocol: Protocol) -> None:
    with db.transaction(engine) as session:
        load_org(session, path, protocol)


@backends
def test_loading_twice_updates_in_place(engine: Engine, protocol: Protocol,
                                        tmp_path: Path) -> None:
    load(engine, DATA / "org.yaml", protocol)
    changed = ORG.replace("{ref: R200, team: west-a, iro: iro.ben, social_worker: sw.eve}",
                          "{ref: R200, team: east-a, iro: iro.ada, social_worker: sw.dan}")
    changed = changed.replace(
        "  - {username: sw.eve, name: Eve Worker, email: eve@riverside.example,"
        " roles: [social_worker], team: west-a}\n", "")
    changed = changed.replace("{ref: R200, team: east-a", "{ref: R201, team: west-a, iro: iro.ben}\n  - {ref: R200, team: east-a")
    load(engine, write(tmp_path, changed), protocol)
    with db.transaction(engine) as s:
        r200 = s.exec(select(Child).where(Child.ref == "R200")).one()
        team = s.get(Team, r200.team_id)
        assert team is not None and team.key == "east-a"
        eve = s.exec(select(Person).where(Person.username == "sw.eve")).one()
        assert not eve.active  # kept for the event log, no longer active
        assert s.exec(select(Child).where(Child.ref == "R201")).one().active
        assert len(s.exec(select(Person)).all()) == 13


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("team_manager: tm.fay}", "team_manager: tm.fey}"),
         r"line 20: teams\[0\]\.team_manager: tm.fey is not in people"),
        (("{ref: R101, team: east-a,", "{ref: R101, team: east-b,"),
         r"line 27: children\[1\]\.team: there is no team 'east-b'"),
        (("{ref: R200, team: west-a, iro: iro.ben,", "{ref: R200, team: west-a, iro: tm.gus,"),
         r"line 28: children\[2\]\.iro: tm.gus does not have the role iro"),
        (("roles: [iro_manager]", "roles: [iro_manger]"),
         r"line 5: people\[2\]\.roles\[0\]: Input should be"),
        (("{ref: R101,", "{ref: R100,"), r"line 27: children\[1\]\.ref: child R100 is listed twice"),
        (("  director: dcs.lou\n", "  directer: dcs.lou\n"),
         r"senior\.directer: unknown field 'directer' \(did you mean 'director'\?\)"),
        (("{key: west, name: West Service, head_of_service: hos.jon}",
          "{key: west, name: West Service}"),
         r"line 18: services\[1\]: service west has children but no head_of_service"),
        (("email: ada@riverside.example", "email: ada-at-riverside"),
         r"line 3: people\[0\]\.email: 'ada-at-riverside' is not an e-mail"),
        ((LAST, LAST + COVER.replace("deputy: tm.gus", "deputy: tm.fay")),
         r"line 30: cover\[0\]\.deputy: tm.fay cannot cover for themselves"),
        ((LAST, LAST + COVER.replace("deputy: tm.gus", "deputy: irom.cat")),
         r"line 30: cover\[0\]\.deputy: tm.fay's work on the management line may not go to"),
        ((LAST, LAST + COVER.replace("deputy: tm.gus", "deputy: tm.nobody")),
         r"line 30: cover\[0\]\.deputy: tm.nobody is not in people"),
        ((LAST, LAST + COVER.replace("to: 2027-03-05", "to: 2027-02-26")),
         r"line 30: cover\[0\]\.to: the cover's last day 2027-02-26 is before its first day"),
        ((LAST, LAST + COVER.replace("to: 2027-03-05", "to: 9999-12-31")),
         r"cover\[0\]\.to: the cover's last day 9999-12-31 is outside the dates drp accepts"),
        ((LAST, LAST + COVER + COVER.split("\n")[1].replace("03-01", "03-05") + "\n"),
         r"line 31: cover\[1\]: tm.fay already has cover from 2027-03-01 to 2027-03-05 by"
         r" tm.gus \(set by the organisation file\)"),
        ((LAST, LAST + COVER + "  - {person: tm.gus, deputy: hos.jon, from: 2027-03-02,"
                               " to: 2027-03-03}\n"),
         r"line 31: cover\[1\]: tm.gus covers for tm.fay from 2027-03-01 to 2027-03-05, whose"
         r" work would then reach nobody"),
    ],
)
def test_a_bad_org_file_is_refused_whole_naming_the_line(
    engine: Engine, protocol: Protocol, tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    text = ORG.replace(*change, 1)
    assert text != ORG
    with pytest.raises(ConfigError, match=expected) as err:
        load(engine, write(tmp_path, text), protocol)
    assert "\n" not in str(err.value)
    with db.transaction(engine) as s:  # all or nothing: nothing was written
        assert s.exec(select(Person)).all() == []
        assert s.exec(select(PersonRole)).all() == []


def test_a_reload_that_fails_leaves_the_previous_organisation(
    engine: Engine, protocol: Protocol, tmp_path: Path
) -> None:
    load(engine, DATA / "org.yaml", protocol)
    with pytest.raises(ConfigError):
        load(engine, write(tmp_path, ORG.replace("tm.fay}", "tm.nobody}")), protocol)
    with db.transaction(engine) as s:
        assert len(s.exec(select(Person)).all()) == 13
        team = s.exec(select(Team).where(Team.key == "east-a")).one()
        fay = s.exec(select(Person).where(Person.username == "tm.fay")).one()
        assert team.team_manager_id == fay.id


@backends
def test_a_team_without_a_team_manager_loads_and_says_who_takes_its_stage(
    engine: Engine, protocol: Protocol, tmp_path: Path
) -> None:
    vacant = ORG.replace("{key: west-a, name: West A, service: west, team_manager: tm.gus}",
                         "{key: west-a, name: West A, service: west}")
    with db.transaction(engine) as session:
        result = load_org(session, write(tmp_path, vacant), protocol)
    # West has no service manager: the head of service takes the team manager's stage.
    assert result.vacancies == [
        "team west-a has no team manager: its stage falls to Jon Head (head of service)"]
    nobody = vacant.replace("{key: west, name: West Service, head_of_service: hos.jon}",
                            "{key: west, name: West Service}")
    with pytest.raises(ConfigError, match=r"line 21: teams\[1\]: team west-a has children but"
                                          r" no team_manager, and service west has no"
                                          r" service_manager or head_of_service"):
        load(engine, write(tmp_path, nobody), protocol)
