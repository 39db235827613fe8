"""The dispute ladder as a `transitions` state machine, built from the protocol in one loop.

One machine per protocol (never one per alert, never attached to a SQLModel row): the service
layer drives a small adapter whose `state` property reads and writes the alert's `status` and
`stage` columns (transitions' static-machine pattern). Callbacks do no I/O; the service layer
commits or rolls back the whole transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from transitions import EventData, Machine, MachineError

from ..errors import InvalidTransition
from .protocol import TERMINAL, Protocol

NEW = "new"
CLOSED = "closed"  # a good-practice record: no ladder, closed once recorded

# Triggers people (and the flows, as `system`) may fire.
TRIGGERS = (
    "raise_alert",
    "respond",
    "escalate",
    "resolve",
    "withdraw",
    "hold",
    "resume",
    "extend",
    "refer",
    "cafcass_response",
    "acknowledge",
    "reopen",
    "action_done",
    "move",
    "link",
    "remind",
    "set_theme",
)

# Words people use for the triggers (the CLI command names).
VERBS = {
    "raise_alert": "raise",
    "respond": "respond",
    "escalate": "escalate",
    "resolve": "resolve",
    "withdraw": "withdraw",
    "hold": "hold",
    "resume": "resume",
    "extend": "extend",
    "refer": "refer",
    "cafcass_response": "record Cafcass's response to",
    "acknowledge": "acknowledge",
    "reopen": "reopen",
    "action_done": "action-done",
    "move": "move",
    "link": "link",
    "remind": "remind",
    "set_theme": "set the theme of",
}


@dataclass
class AlertState:
    """What the machine needs to know about one alert; `state` maps onto its columns."""

    status: str
    stage: str
    cafcass_key: str
    on_hold: bool = False
    outstanding_actions: int = 0
    referred: bool = False  # referred to Cafcass (concurrent: the alert stays open)
    acknowledged: bool = False  # the current stage, by the person responsible
    responded: bool = False  # the current stage's response given
    permitted: Callable[[str], bool] = field(default=lambda _t: True)
    refusal: str | None = None

    @property
    def state(self) -> str:
        return self.stage if self.status == "open" else self.status

    @state.setter
    def state(self, value: str) -> None:
        if value in TERMINAL:
            self.status = value
        else:
            self.status, self.stage = "open", value


def _model(event: EventData) -> AlertState:
    model = event.model
    assert isinstance(model, AlertState)
    return model


def _refuse(event: EventData, message: str) -> bool:
    _model(event).refusal = message
    return False


def _permitted(event: EventData) -> bool:
    if _model(event).permitted(event.event.name):
        return True
    return _refuse(event, "not permitted")


def _not_held(event: EventData) -> bool:
    if not _model(event).on_hold:
        return True
    return _refuse(event, "the alert is on hold; resume it first (drp alert resume)")


def _held(event: EventData) -> bool:
    if _model(event).on_hold:
        return True
    return _refuse(event, "the alert is not on hold")


def _not_referred(event: EventData) -> bool:
    if not _model(event).referred:
        return True
    return _refuse(event, "it has already been referred to Cafcass (one referral per alert);"
                          " record Cafcass's response with drp alert cafcass")


def _referred(event: EventData) -> bool:
    if _model(event).referred:
        return True
    return _refuse(event, "it has not been referred to Cafcass")


def _unacknowledged(event: EventData) -> bool:
    model = _model(event)
    if model.acknowledged:
        return _refuse(event, "this stage has already been acknowledged")
    if model.responded:
        return _refuse(event, "this stage has already been responded to")
    return True


def _actions_outstanding(event: EventData) -> bool:
    if _model(event).outstanding_actions > 0:
        return True
    return _refuse(event, "it has no agreed actions outstanding")


def build_machine(protocol: Protocol) -> Machine:
    keys = list(protocol.keys)
    states = [NEW, *keys, *TERMINAL, CLOSED]
    transitions: list[dict[str, Any]] = []
    first = keys[0]
    formal = [s.key for s in protocol.stages if s.formal]

    def raise_to(dest: str) -> Callable[[EventData], bool]:
        def cond(event: EventData) -> bool:
            wanted = event.kwargs.get("stage") or first
            if wanted == dest:
                return True
            if event.kwargs.get("stage") not in keys:
                return _refuse(
                    event,
                    f"there is no stage {wanted!r}; the stages are {', '.join(keys)}",
                )
            return _refuse(
                event,
                f"an alert starts at {first} or at a formal stage ({', '.join(formal)})",
            )

        return cond

    def escalate_to(source: str, dest: str) -> Callable[[EventData], bool]:
        nxt = keys[keys.index(source) + 1]

        def cond(event: EventData) -> bool:
            wanted = event.kwargs.get("to") or nxt
            if wanted == dest:
                return True
            later = keys[keys.index(source) + 1 :]
            if wanted not in later:
                return _refuse(
                    event,
                    f"it cannot be escalated to {wanted!r} from {source}; choose a later"
                    f" stage: {', '.join(later)}",
                )
            return False

        return cond

    def reopen_to(dest: str) -> Callable[[EventData], bool]:
        def cond(event: EventData) -> bool:
            if event.kwargs.get("resolved_stage") != dest:
                return False
            if _model(event).outstanding_actions == 0:
                return _refuse(
                    event,
                    "all its agreed actions are done, so it cannot be reopened; raise a new"
                    " alert if the problem is back",
                )
            return True

        return cond

    for dest in dict.fromkeys([first, *formal]):
        transitions.append(
            {"trigger": "raise_alert", "source": NEW, "dest": dest,
             "conditions": [_permitted, raise_to(dest)]}
        )
    for i, source in enumerate(keys):
        for dest in keys[i + 1 :]:
            transitions.append(
                {"trigger": "escalate", "source": source, "dest": dest,
                 "conditions": [_permitted, _not_held, escalate_to(source, dest)]}
            )
        for trigger, target, extra in (
            ("respond", None, []),
            ("resolve", "resolved", []),
            ("withdraw", "withdrawn", []),
            ("refer", None, [_not_referred]),
            ("cafcass_response", None, [_referred]),
            ("acknowledge", None, [_unacknowledged]),
            ("hold", None, [_not_held]),
            ("resume", None, [_held]),
            ("extend", None, [_not_held]),
            ("remind", None, [_not_held]),
        ):
            transitions.append(
                {"trigger": trigger, "source": source, "dest": target,
                 "conditions": [_permitted, *extra]}
            )
        transitions.append(
            {"trigger": "reopen", "source": "resolved", "dest": source,
             "conditions": [_permitted, reopen_to(source)]}
        )
    transitions.append(
        {"trigger": "action_done", "source": [*keys, *TERMINAL], "dest": None,
         "conditions": [_permitted, _actions_outstanding]}
    )
    transitions.append(
        {"trigger": "set_theme", "source": [*keys, *TERMINAL], "dest": None,
         "conditions": [_permitted]}
    )
    # A referral's response can come after the local process has ended.
    transitions.append(
        {"trigger": "cafcass_response", "source": list(TERMINAL), "dest": None,
         "conditions": [_permitted, _referred]}
    )
    for trigger in ("move", "link"):
        transitions.append(
            {"trigger": trigger, "source": [*keys, *TERMINAL, CLOSED], "dest": None,
             "conditions": [_permitted]}
        )
    # A notice about agreed actions can follow a resolved alert too.
    transitions.append(
        {"trigger": "remind", "source": "resolved", "dest": None, "conditions": [_permitted]}
    )
    return Machine(
        model=None,
        states=states,
        transitions=transitions,
        initial=None,
        auto_transitions=False,
        send_event=True,
    )


@lru_cache(maxsize=8)
def _machine_for(protocol: Protocol) -> Machine:
    return build_machine(protocol)


def machine_for(protocol: Protocol) -> Machine:
    return _machine_for(protocol)


@lru_cache(maxsize=256)
def _triggers(machine: Machine, state: str) -> frozenset[str]:
    """The triggers defined from a state (the machine is built once and never changes)."""
    return frozenset(machine.get_triggers(state))


def possible_triggers(protocol: Protocol, state: str) -> list[str]:
    available = _triggers(machine_for(protocol), state)
    return [t for t in TRIGGERS if t in available]


def permitted_triggers(protocol: Protocol, adapter: AlertState) -> list[str]:
    """The triggers that would succeed now, by the machine's own conditions (the person's
    permission included), without changing anything: each is tried on a copy of the adapter
    (transitions' callbacks do no I/O, so a trial has no effect beyond the copy)."""
    machine = machine_for(protocol)
    out = []
    for trigger in possible_triggers(protocol, adapter.state):
        trial = replace(adapter)
        kwargs = {"resolved_stage": adapter.stage} if trigger == "reopen" else {}
        if machine.events[trigger].trigger(trial, **kwargs):
            out.append(trigger)
    return out


def _offered(protocol: Protocol, adapter: AlertState) -> list[str]:
    """What may be done from here, whoever asks: worded in a refusal."""
    anyone = replace(adapter, permitted=lambda _t: True)
    return [t for t in permitted_triggers(protocol, anyone)
            if t not in ("remind", "set_theme", "move", "link")]


def describe_state(protocol: Protocol, adapter: AlertState) -> str:
    if adapter.status == "open":
        held = ", on hold" if adapter.on_hold else ""
        return f"at {adapter.stage} ({protocol.title(adapter.stage)}){held}"
    if adapter.status == CLOSED:
        return "a record of good practice"
    return f"{adapter.status} at {adapter.stage} (closed)"


def fire(
    protocol: Protocol, adapter: AlertState, trigger: str, subject: str, **kwargs: Any
) -> None:
    """Fire `trigger` or raise InvalidTransition naming where the alert is and what may be
    done from there. The caller has already checked the person's role (NotPermitted)."""
    machine = machine_for(protocol)
    state = adapter.state

    def refused(why: str) -> InvalidTransition:
        # Worded only when refusing: a timescale run fires this thousands of times.
        possible = [VERBS[t] for t in _offered(protocol, adapter)]
        options = f"what may be done from there: {', '.join(possible)}" if possible else (
            "nothing more may be done with it"
        )
        return InvalidTransition(
            f"{subject} is {describe_state(protocol, adapter)}: {why}; {options}")

    if trigger not in _triggers(machine, state):
        hint = ""
        if trigger == "escalate" and state == protocol.keys[-1]:
            hint = ("; it is at the last stage, so consider referring it to Cafcass (drp alert"
                    " refer), which runs alongside it")
        raise refused(f"it cannot {VERBS.get(trigger, trigger)}{hint}")
    adapter.refusal = None
    try:
        ok = machine.events[trigger].trigger(adapter, **kwargs)
    except MachineError as exc:  # pragma: no cover - guarded by get_triggers above
        raise refused(str(exc.value)) from None
    if not ok:
        raise refused(adapter.refusal or "that is not possible from here")


# --- diagrams ------------------------------------------------------------------------------


def diagram(protocol: Protocol, out: Path) -> Path:
    """Draw the configured ladder: .mmd/.md as Mermaid (no Graphviz needed), .svg/.png/.dot
    with Graphviz."""
    from transitions.extensions import GraphMachine

    suffix = out.suffix.lower()
    engine: Literal["mermaid", "graphviz"] = (
        "mermaid" if suffix in (".mmd", ".md", ".mermaid") else "graphviz"
    )
    if suffix not in (".mmd", ".md", ".mermaid", ".svg", ".png", ".dot", ".gv", ".pdf"):
        raise InvalidTransition(
            f"cannot draw {out.name}: name the file .svg, .png, .pdf, .dot or .mmd (Mermaid)"
        )
    keys = list(protocol.keys)
    states = [NEW, *keys, "resolved", "withdrawn"]
    edges: list[dict[str, Any]] = [{"trigger": "raise", "source": NEW, "dest": keys[0]}]
    legend = [
        f"{s.key}: {s.title} ({s.responsible.value.replace('_', ' ')},"
        f" {s.timescale_working_days} working days)"
        for s in protocol.stages
    ] + [f"{protocol.cafcass.title}: the IRO's, at any stage, alongside the local process"
         " (the alert stays open)"]
    title = protocol.name if engine == "mermaid" else "\n".join([protocol.name, *legend])
    for s in protocol.stages[1:]:
        if s.formal:
            edges.append({"trigger": "raise (formal)", "source": NEW, "dest": s.key})
    for i, source in enumerate(keys):
        stage = protocol.stages[i]
        if i + 1 < len(keys):
            auto = " (automatic when overdue)" if stage.when_overdue == "escalate" else ""
            edges.append({"trigger": f"escalate{auto}", "source": source, "dest": keys[i + 1]})
            for dest in keys[i + 2 :]:
                edges.append({"trigger": "bypass", "source": source, "dest": dest})
        edges += [
            {"trigger": "resolve", "source": source, "dest": "resolved"},
            {"trigger": "withdraw", "source": source, "dest": "withdrawn"},
            {"trigger": "reopen", "source": "resolved", "dest": source},
        ]

    class _Model:
        pass

    model = _Model()
    machine = GraphMachine(
        model=model, states=states, transitions=edges, initial=NEW,
        auto_transitions=False, graph_engine=engine, title=title,
        show_state_attributes=False,
    )
    graph = machine.get_graph()
    out.parent.mkdir(parents=True, exist_ok=True)
    if engine == "mermaid":
        source = graph.draw(None)
        text = source if isinstance(source, str) else source.decode()
        # transitions writes the title bare; Mermaid's front matter wants `title:`.
        text = text.replace(f"---\n{title}\n---", f"---\ntitle: {title}\n---", 1)
        for stage in protocol.stages:  # show each stage by its title
            label = f"{stage.title} ({stage.timescale_working_days} working days)"
            text = text.replace(f'state "{stage.key}" as {stage.key}\n',
                                f'state "{label.replace(chr(34), chr(39))}" as {stage.key}\n')
        if suffix == ".md":
            rows = "\n".join(f"- {line}" for line in legend)
            text = (f"# {protocol.name}\n\nDrawn by `drp protocol diagram --out FILE.md` from"
                    f" the protocol file.\n\n{rows}\n\n```mermaid\n{text.strip()}\n```\n")
        out.write_text(text, encoding="utf-8")
        return out
    if suffix in (".dot", ".gv"):
        out.write_text(graph.source, encoding="utf-8")
        return out
    try:
        graph.draw(str(out), format=suffix[1:], prog="dot")
    except Exception as exc:  # graphviz's ExecutableNotFound and friends
        raise InvalidTransition(
            f"cannot draw {out.name}: Graphviz's `dot` is needed for SVG and PNG ({exc});"
            " install graphviz, or write Mermaid with --out FILE.mmd"
        ) from None
    return out
