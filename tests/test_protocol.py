from __future__ import annotations

from pathlib import Path

import pytest

from drp.errors import ConfigError, InvalidTransition
from drp.ladder.machine import AlertState, build_machine, diagram, fire, possible_triggers
from drp.ladder.protocol import OverduePolicy, Role, load_protocol
from drp.settings import CONFIG_DIR

from .support import tools

DEFAULT = CONFIG_DIR / "protocol.yaml"
MANCHESTER = CONFIG_DIR / "protocol.manchester.yaml"


def test_the_default_ladder_is_domain_md() -> None:
    p = load_protocol(DEFAULT)
    assert p.keys == ("informal", "stage1", "stage2", "stage3", "stage4")
    assert [s.responsible for s in p.stages] == [
        Role.team_manager, Role.team_manager, Role.head_of_service,
        Role.assistant_director, Role.director,
    ]
    assert all(s.timescale_working_days == 5 for s in p.stages)
    assert sum(s.timescale_working_days for s in p.stages if s.formal) == 20
    # Pause points: stages 1 and 2 escalate by themselves; from stage 3 up the IRO decides.
    assert [s.when_overdue for s in p.stages] == [
        OverduePolicy.remind_iro, OverduePolicy.escalate, OverduePolicy.escalate,
        OverduePolicy.remind_iro, OverduePolicy.consider_cafcass]
    assert p.resolution_working_days == 20
    # The informal date is the IRO's: 5 working days unless they choose, at most 10.
    informal = p.stage("informal")
    assert not informal.formal and (informal.timescale_working_days,
                                    informal.max_working_days) == (5, 10)
    assert [s.key for s in p.stages if s.formal] == ["stage1", "stage2", "stage3", "stage4"]
    assert (p.max_hold_working_days, p.max_extension_working_days) == (65, 10)


def test_manchester_has_six_stages_with_cafcass_the_sixth() -> None:
    p = load_protocol(MANCHESTER)
    formal = [s for s in p.stages if s.formal]
    assert len(formal) == 5 and "CAFCASS" in p.cafcass.title
    assert formal[1].responsible is Role.service_manager


def test_manchester_invents_no_timescale_and_fits_the_formal_20() -> None:
    """Manchester publishes no stage timescale: the file says so, the informal stage takes
    the default protocol's (5, at most 10: outside the 20), and the Handbook's 20 working
    days are spread over the five formal stages only."""
    p = load_protocol(MANCHESTER)
    informal = p.stages[0]
    assert not informal.formal
    assert (informal.timescale_working_days, informal.max_working_days) == (5, 10)
    assert p.resolution_working_days == 20
    assert [s.timescale_working_days for s in p.stages if s.formal] == [4, 4, 4, 4, 4]
    text = MANCHESTER.read_text()
    assert "publishes no timescale" in text
    assert text.count("not published") == len(p.stages)
    assert p.stage("stage3").when_overdue is OverduePolicy.remind_iro


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # The formal stages may not add up to more than the formal clock.
        (("resolution_working_days: 20 ", "resolution_working_days: 19 "),
         r"formal stages' timescales add up to 20 working days, more than"
         r" resolution_working_days \(19\)"),
        # A maximum is the informal stage's alone, and never below its default.
        (("    timescale_working_days: 5\n    reminder_lead_working_days: 1\n"
          "    when_overdue: escalate",
          "    timescale_working_days: 5\n    max_timescale_working_days: 8\n"
          "    reminder_lead_working_days: 1\n    when_overdue: escalate"),
         r"max_timescale_working_days is only for the informal stage"),
        (("max_timescale_working_days: 10", "max_timescale_working_days: 4"),
         r"max_timescale_working_days must be at least timescale_working_days"),
        (("max_hold_working_days: 65", "max_hold_working_days: 0"),
         r"max_hold_working_days: Input should be greater than or equal to 1"),
    ],
)
def test_the_clocks_limits_are_checked_on_load(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in BASE
    path = write(tmp_path, BASE.replace(*change, 1))
    with pytest.raises(ConfigError, match=expected):
        load_protocol(path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text(text)
    return path


BASE = DEFAULT.read_text()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("timescale_working_days: 5", "timescale_working_days: five"),
         r"line 3\d: stages\[0\]\.timescale_working_days: .*integer.*'five'"),
        (("responsible: head_of_service", "responsible: head_of_servise"),
         r"line \d+: stages\[2\]\.responsible: Input should be"),
        (("    when_overdue: remind_iro", "    when_overdu: remind_iro"),
         r"stages\[0\]\.when_overdu: unknown field 'when_overdu' \(did you mean 'when_overdue'\?\)"),
        (("key: stage2", "key: stage1"), r"stage key 'stage1' is used twice"),
        (("when_overdue: consider_cafcass", "when_overdue: escalate"),
         r"stage4 is the last stage, so when_overdue cannot be escalate"),
        (("resolution_working_days: 20", "resolution_working_days: -3"),
         r"line \d+: resolution_working_days: Input should be greater than or equal to 1"),
        (("stages:", "stages: [\n"), r"line \d+: not valid YAML"),
    ],
)
def test_a_bad_protocol_file_is_refused_naming_file_line_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, BASE.replace(*change, 1))
    with pytest.raises(ConfigError, match=expected) as err:
        load_protocol(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_protocol_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_protocol(tmp_path / "nope.yaml")


def test_the_machine_is_built_from_the_protocol_not_written_per_stage() -> None:
    for path in (DEFAULT, MANCHESTER):
        p = load_protocol(path)
        machine = build_machine(p)
        # Referral is concurrent (no state of its own); "closed" is a good-practice record.
        assert set(machine.states) == {"new", *p.keys, "resolved", "withdrawn", "closed"}
        assert "escalate" not in possible_triggers(p, p.keys[-1])
        assert "refer" in possible_triggers(p, p.keys[0])
        assert possible_triggers(p, "withdrawn") == [
            "cafcass_response", "action_done", "move", "link", "set_theme"]
        assert "refer" in possible_triggers(p, p.keys[-1])


def test_a_refused_trigger_names_the_stage_and_the_way_on() -> None:
    p = load_protocol(DEFAULT)
    adapter = AlertState(status="open", stage="stage4", cafcass_key="cafcass")
    with pytest.raises(InvalidTransition, match=r"at stage4 \(Stage 4: Director\).*drp alert refer"):
        fire(p, adapter, "escalate", "alert 9")
    fire(p, adapter, "refer", "alert 9")
    # A referral runs alongside the local process: the alert stays open where it was.
    assert (adapter.status, adapter.stage) == ("open", "stage4")
    adapter.referred = True
    with pytest.raises(InvalidTransition, match="already been referred"):
        fire(p, adapter, "refer", "alert 9")
    fire(p, adapter, "cafcass_response", "alert 9")
    fire(p, adapter, "resolve", "alert 9")
    assert adapter.state == "resolved"
    fire(p, adapter, "cafcass_response", "alert 9")  # Cafcass may answer after the end


def test_cafcass_response_needs_a_referral_first() -> None:
    p = load_protocol(DEFAULT)
    adapter = AlertState(status="open", stage="stage1", cafcass_key="cafcass")
    with pytest.raises(InvalidTransition, match="not been referred"):
        fire(p, adapter, "cafcass_response", "alert 9")
    assert adapter.state == "stage1"


def test_bypass_goes_straight_to_a_later_stage() -> None:
    p = load_protocol(DEFAULT)
    adapter = AlertState(status="open", stage="informal", cafcass_key="cafcass")
    fire(p, adapter, "escalate", "alert 1", to="stage3")
    assert adapter.state == "stage3"


def test_the_mermaid_diagram_shows_the_configured_ladder(tmp_path: Path) -> None:
    out = diagram(load_protocol(MANCHESTER), tmp_path / "ladder.mmd")
    text = out.read_text()
    assert "stateDiagram" in text and "stage5" in text and "Stage 5: Director" in text


def test_the_svg_diagram_draws_with_graphviz(tmp_path: Path) -> None:
    import shutil

    if shutil.which("dot") is None:
        tools.missing("Graphviz", "its `dot` is not on PATH, so SVG diagrams cannot be drawn",
                      "apt-get install graphviz")
    out = diagram(load_protocol(DEFAULT), tmp_path / "ladder.svg")
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_the_committed_state_diagram_matches_the_default_protocol(tmp_path: Path) -> None:
    fresh = diagram(load_protocol(DEFAULT), tmp_path / "state-machine.md").read_text()
    committed = (CONFIG_DIR.parent / "docs" / "state-machine.md").read_text()
    assert committed == fresh, (
        "docs/state-machine.md is out of date: run `drp protocol diagram --out"
        " docs/state-machine.md`")
