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
day")` writes 1 working day, 2 working days.

Free text: what people type (a summary, a reason, a response) never reaches a template unless
the council's setting lets it (DRP_MAIL_DETAIL, `detail` here): `minimise` blanks it in the
context before any template, the council's own included, sees it. One rule, one place: a
template cannot leak what it is not given."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    BytecodeCache,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    pass_context,
    select_autoescape,
)
from jinja2.bccache import Bucket
from jinja2.runtime import Context

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "templates"

# How much an e-mail may say (DRP_MAIL_DETAIL): "reference", the child's reference, the
# alert's number and stage, what to do and the link, and no free text; "summary", the alert's
# summary too (a council's informed choice).
MAIL_DETAIL = ("reference", "summary")

# Free text people type, by its key in a message's context, at any depth (alert.summary,
# cover.reason, closure_reason, ...). Whatever carries free text into a context uses one of
# these names; tests/test_mail_detail.py puts hostile text in each and in every service input.
FREE_TEXT = frozenset({
    "summary", "detail", "impact", "response", "response_text", "message", "comment", "reason",
    "closure_reason", "outcome", "note", "text", "action_text", "legal_advice",
})

# The free text each level lets through.
LETS_THROUGH = {"reference": frozenset(), "summary": frozenset({"summary"})}


_PLAIN = frozenset({str, int, float, bool, date, datetime, type(None)})


def minimise(context: dict[str, Any], detail: str) -> dict[str, Any]:
    """The context with every free-text value the level does not let through made empty (not
    removed: a template that prints it prints nothing rather than failing)."""
    if detail not in LETS_THROUGH:
        raise ValueError(f"{detail!r} is not a level of detail for e-mails; use"
                         f" {' or '.join(MAIL_DETAIL)}")
    blank = FREE_TEXT - LETS_THROUGH[detail]

    def clean(value: Any) -> Any:
        # Values of these exact types hold nothing to blank: kept without a call (a digest's
        # contexts hold thousands of rows of them).
        if isinstance(value, dict):
            return {k: "" if k in blank else v if type(v) in _PLAIN else clean(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [v if type(v) in _PLAIN else clean(v) for v in value]
        return value

    cleaned: dict[str, Any] = clean(context)
    return cleaned


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


# Made once; a context is a tree (no container inside itself), so the encoder is spared
# keeping a marker for each.
_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"), check_circular=False)


def dump_context(context: dict[str, Any]) -> str:
    return _ENCODER.encode(context)


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


@lru_cache(maxsize=4096)
def _written(day: date, year: bool) -> str:
    """A day as words, worked out once a day (a digest writes the same few thousand times)."""
    return f"{day.day} {day:%B %Y}" if year else f"{day.day} {day:%B}"


def _date(value: Any) -> str:
    """9 March 2026 (no leading zero), the way councils write dates."""
    day = _day(value)
    return _written(day, True) if day else ""


@pass_context
def _short_date(context: Context, value: Any) -> str:
    """9 March, when it is in the year of the message's `today`; 9 March 2027 otherwise (or
    when the context has no `today`)."""
    day = _day(value)
    if day is None:
        return ""
    today = _day(context.get("today"))
    return _written(day, not (today and today.year == day.year))


def _counted(n: int, singular: str, plural: str | None = None) -> str:
    """1 working day, 3 working days (0 reads "0 working days": a sentence about nothing
    should say so in its own words)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class CompiledOnce(BytecodeCache):
    """Jinja's compiled templates kept for the process, in memory: an environment made again
    with the same options (a renderer, an app in each test) does not compile its templates
    again. Jinja keys each by the template's name and file and checks the source's checksum,
    so an edited template is compiled anew. One instance for each set of environment options
    (what a template compiles to depends on them)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._shape: tuple[Any, ...] | None = None

    def get_bucket(self, environment: Environment, name: str, filename: str | None,
                   source: str) -> Bucket:
        """Refuses an environment whose compile-time options differ from the first one's."""
        shape = _shape(environment)
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError("a CompiledOnce serves environments of one set of options;"
                             " give this environment one of its own")
        return super().get_bucket(environment, name, filename, source)

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


def _shape(env: Environment) -> tuple[Any, ...]:
    """What an environment's compiled templates depend on besides their source."""
    escape = env.autoescape
    return (type(env), env.block_start_string, env.block_end_string,
            env.variable_start_string, env.variable_end_string, env.comment_start_string,
            env.comment_end_string, env.line_statement_prefix, env.line_comment_prefix,
            env.trim_blocks, env.lstrip_blocks, env.newline_sequence,
            env.keep_trailing_newline, env.optimized, env.is_async,
            tuple(sorted(env.extensions)),
            escape if isinstance(escape, bool) else tuple(
                escape(f"x.{ext}") for ext in ("html", "htm", "xml", "txt")))


_COMPILED = CompiledOnce()  # the Renderer's environments (their options are always the same)
_DICT_ATTRS = frozenset(dir(dict))


class _Environment(Environment):
    """Jinja's environment, with `a.b` on a plain dict (every message's context is dicts) read
    as the item straight away. Jinja tries the attribute first and the item after a raised
    AttributeError; for a plain dict the attribute exists only when it is one of dict's own
    (`items`, `get`, ...), so asking for those first reads exactly the same, without an
    exception for every field of every row."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRS:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class Renderer:
    def __init__(self, override_dir: Path | None = None, detail: str = "reference") -> None:
        minimise({}, detail)  # refuses an unknown level here, not at the first message
        self.detail = detail
        loaders = [FileSystemLoader(str(DEFAULT_TEMPLATES))]
        if override_dir is not None:
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self.env = _Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(["html", "xml"]),  # .txt bodies are plain text
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            bytecode_cache=_COMPILED,
        )
        self.env.filters["date"] = _date
        self.env.filters["short_date"] = _short_date
        self.env.filters["counted"] = _counted
        self._found: dict[str, tuple[Template, Template]] = {}
        self._looked_up = 0.0

    def messages(self) -> list[str]:
        names = {Path(n).stem for n in self.env.list_templates(extensions=["txt"])}
        return sorted(names - {"base"})

    def minimise(self, context: dict[str, Any]) -> dict[str, Any]:
        """What a message of this renderer may be given (for a context kept to render later)."""
        return minimise(context, self.detail)

    def _templates(self, message: str) -> tuple[Template, Template]:
        """The message's plain-text template and its HTML one (its own, or base.html), looked
        up once and kept for up to a second: a delivery run renders thousands of messages from
        a handful of templates, and asking Jinja each time checks the files on disk, and for a
        message without its own .html asks every loader and raises. Kept a second, a council's
        edited or new template is seen as soon as it was before, bar that second."""
        now = time.monotonic()
        if now - self._looked_up >= RECHECK:
            self._found.clear()
            self._looked_up = now
        found = self._found.get(message)
        if found is None:
            try:
                text_t = self.env.get_template(f"{message}.txt")
            except TemplateNotFound:
                raise KeyError(f"there is no message {message!r}; the messages are"
                               f" {', '.join(self.messages())}") from None
            try:
                html_t = self.env.get_template(f"{message}.html")
            except TemplateNotFound:
                html_t = self.env.get_template("base.html")
            found = self._found[message] = (text_t, html_t)
        return found

    def render(self, message: str, context: dict[str, Any]) -> Rendered:
        context = self.minimise(context)
        text_t, html_t = self._templates(message)
        # One Jinja context for the plain text and its blocks (a block's `set` stays in the
        # block: none writes to the context): the blocks the layout renders are kept as it
        # renders them, not rendered again each on a context of its own.
        ctx = text_t.new_context(context)
        seen: dict[str, str] = {}
        for name in PARTS:
            if name in text_t.blocks:
                ctx.blocks[name][0] = _kept(ctx.blocks[name][0], name, seen)

        def block(name: str) -> str:
            # The message's own block (a block only its layout has is not a part).
            if name not in text_t.blocks:
                return ""
            if name in seen:
                return seen[name]
            return "".join(ctx.blocks[name][0](ctx)).strip()

        try:
            subject = block("subject")
            whole = self.env.concat(text_t.root_render_func(ctx))
            parts = {
                name: [p.strip() for p in block(name).split("\n\n") if p.strip()]
                for name in PARTS
            }
        except Exception:
            self.env.handle_exception()
        # Never let text break out of the Subject header.
        subject = " ".join(subject.split())
        if not subject:
            raise KeyError(f"{message}.txt has no subject block")
        text = re.sub(r"\n{3,}", "\n\n", whole).strip() + "\n"
        html = html_t.render({**context, "subject": subject, "parts": parts})
        return Rendered(subject=subject, text=text, html=html)


# The blocks the HTML part is laid out from (with the subject, rendered first).
PARTS = ("headline", "body", "todo")
RECHECK = 1.0  # seconds a renderer keeps the templates it looked up


def _kept(fn: Callable[[Context], Iterator[str]], name: str, seen: dict[str, str]
          ) -> Callable[[Context], Iterator[str]]:
    """A block's render function that keeps its output (stripped, as the parts are read) the
    first time it runs, and yields it as it did."""
    def render(context: Context) -> Iterator[str]:
        chunks = list(fn(context))
        seen.setdefault(name, "".join(chunks).strip())
        yield from chunks
    return render
