"""Render a message (subject, plain text, HTML) from Jinja2 templates.

Every message is one template, `NAME.txt`, extending the shared `base.txt` and filling its
blocks: `subject`, `headline`, `body` (what happened) and `todo` (what the reader must do, by
when). The plain-text part is that template; the HTML part is `base.html` laid out from the same
blocks, escaped, so the two parts always say the same thing. A message may have its own
`NAME.html` instead. A council overrides the wording by putting files of the same name in its
own folder (DRP_TEMPLATES_DIR), searched first.

Dates: a context gives days, already in the council's time zone (an instant is refused, so no
message prints a UTC day); `|date` writes 9 March 2026, `|short_date` 9 March, with the year
when it is not that of the context's `today` (the message's own day). `|counted("working
day")` writes 1 working day, 2 working days."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "templates"


# A message's context kept as JSON (outbox rows rendered at delivery): dates stay dates.
def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in a message context")


def _json_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$date" in obj:
            return date.fromisoformat(obj["$date"])
        if "$datetime" in obj:
            return datetime.fromisoformat(obj["$datetime"])
    return obj


def dump_context(context: dict[str, Any]) -> str:
    return json.dumps(context, default=_json_default, separators=(",", ":"))


def load_context(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text, object_hook=_json_hook)
    return loaded


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _day(value: Any) -> date | None:
    """A message shows days, and only the council's local days: the context gives dates (the
    sender turns each instant into the council's local date, drp.notify.Notifier.local_day).
    An instant here would print its UTC day ("since 31 May" for 00:30 BST on 1 June)."""
    if isinstance(value, datetime):
        raise TypeError(f"an instant ({value.isoformat()}) in a message context: give its"
                        " local date (the council's time zone) instead")
    return value or None


def _date(value: Any) -> str:
    """9 March 2026 (no leading zero), the way councils write dates."""
    day = _day(value)
    return f"{day.day} {day:%B %Y}" if day else ""


@pass_context
def _short_date(context: Context, value: Any) -> str:
    """9 March, when it is in the year of the message's `today`; 9 March 2027 otherwise (or
    when the context has no `today`)."""
    day = _day(value)
    if day is None:
        return ""
    today = _day(context.get("today"))
    return f"{day.day} {day:%B}" if today and today.year == day.year else _date(day)


def _counted(n: int, singular: str, plural: str | None = None) -> str:
    """1 working day, 3 working days (0 reads "0 working days": a sentence about nothing
    should say so in its own words)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class Renderer:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(str(DEFAULT_TEMPLATES))]
        if override_dir is not None:
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(["html", "xml"]),  # .txt bodies are plain text
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["date"] = _date
        self.env.filters["short_date"] = _short_date
        self.env.filters["counted"] = _counted

    def messages(self) -> list[str]:
        names = {Path(n).stem for n in self.env.list_templates(extensions=["txt"])}
        return sorted(names - {"base"})

    def render(self, message: str, context: dict[str, Any]) -> Rendered:
        try:
            text_t = self.env.get_template(f"{message}.txt")
        except TemplateNotFound:
            raise KeyError(
                f"there is no message {message!r}; the messages are {', '.join(self.messages())}"
            ) from None

        def block(name: str) -> str:
            fn = text_t.blocks.get(name)
            if fn is None:
                return ""
            return "".join(fn(text_t.new_context(dict(context)))).strip()

        # Never let text break out of the Subject header.
        subject = " ".join(block("subject").split())
        if not subject:
            raise KeyError(f"{message}.txt has no subject block")
        text = re.sub(r"\n{3,}", "\n\n", text_t.render(context)).strip() + "\n"
        try:
            html_t = self.env.get_template(f"{message}.html")
        except TemplateNotFound:
            html_t = self.env.get_template("base.html")
        parts = {
            name: [p.strip() for p in block(name).split("\n\n") if p.strip()]
            for name in ("headline", "body", "todo")
        }
        html = html_t.render({**context, "subject": subject, "parts": parts})
        return Rendered(subject=subject, text=text, html=html)
