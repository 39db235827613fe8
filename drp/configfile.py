"""Load a YAML file and validate it with a pydantic model, naming the file, the line, the
field and what is wrong when it is refused."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _Lines:
    """Line numbers (1-based) of every mapping key and sequence item, by path."""

    def __init__(self) -> None:
        self.by_path: dict[tuple[Any, ...], int] = {}

    def walk(self, node: yaml.Node, path: tuple[Any, ...] = ()) -> None:
        self.by_path[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                self.by_path[(*path, key)] = key_node.start_mark.line + 1
                self.walk(value_node, (*path, key))
                self.by_path[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        path = tuple(path)
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return self.by_path.get(())


def field_name(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class LoadedYaml:
    def __init__(self, path: Path, data: Any, lines: _Lines) -> None:
        self.path, self.data, self.lines = path, data, lines

    def error(self, loc: tuple[Any, ...], message: str) -> ConfigError:
        line = self.lines.line_of(loc)
        where = f"{self.path}, line {line}" if line else str(self.path)
        return ConfigError(f"{where}: {field_name(loc)}: {message}")

    def validate(self, model: type[M]) -> M:
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise self._explain(exc, _field_names(model)) from None

    def _explain(self, exc: ValidationError, known: set[str]) -> ConfigError:
        errors = exc.errors()
        # A typo shows as an unknown field plus a missing one: report the typo first.
        errors.sort(key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        loc = tuple(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            missing = [str(e["loc"][-1]) for e in errors
                       if e["type"] == "missing" and tuple(e["loc"][:-1]) == loc[:-1]]
            close = difflib.get_close_matches(str(loc[-1]), missing, n=1) or (
                difflib.get_close_matches(str(loc[-1]), sorted(known), n=1))
            close = [c for c in close if c != str(loc[-1])]
            msg = f"unknown field {loc[-1]!r}" + (
                f" (did you mean {close[0]!r}?)" if close else " (a typo?)")
            if loc[:1] == ("children",) and str(loc[-1]) in ("name", "first_name", "surname",
                                                              "dob", "date_of_birth"):
                msg = (f"unknown field {loc[-1]!r}: drp records children by reference only;"
                       " remove it")
        elif first["type"] not in ("missing", "value_error"):
            shown = first.get("input")
            if isinstance(shown, (str, int, float)):
                msg = f"{msg} (got {shown!r})"
        if len(errors) > 1:
            msg += f" (and {len(errors) - 1} more problem(s))"
        return self.error(loc, msg)


def _field_names(model: type[BaseModel]) -> set[str]:
    """Every field name of a model and the models inside it (for "did you mean")."""
    names: set[str] = set()
    todo: list[Any] = [model]
    seen: set[Any] = set()
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        if isinstance(item, type) and issubclass(item, BaseModel):
            for name, info in item.model_fields.items():
                names.add(name)
                todo.append(info.annotation)
        for arg in getattr(item, "__args__", ()) or ():
            todo.append(arg)
    return names


# The largest configuration file drp reads (an organisation file of a large council is a few
# hundred KB): the web upload reads at most this much, and `drp org load` and the other files
# are refused past it before any parsing.
MAX_FILE_BYTES = 5_000_000
# How deeply mappings and lists may nest: an organisation file needs four or five levels. The
# composer and the line walker recurse once a level, and the scanner's work grows with the depth
# (thousands of brackets took minutes and then a RecursionError).
MAX_DEPTH = 20


def too_large(size: int) -> str:
    return (f"{size:,} bytes is too large for a configuration file; the limit is"
            f" {MAX_FILE_BYTES:,} bytes")


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {too_large(path.stat().st_size)}")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x});"
                          " save the file as UTF-8") from None


def _refuse_aliases(path: Path, text: str) -> None:
    """An alias (`*name`) repeats what its anchor holds: nested, a few hundred bytes stand for
    billions of values (a "billion laughs"), which the line walker and validation would each
    visit. drp's files never need one, so the first is refused (the parser's events cost the
    file's length, whatever the aliases would expand to). So is the first mapping or list
    nested deeper than MAX_DEPTH, as soon as it starts (before the scanner's work grows with
    thousands of brackets and the composer recurses past Python's limit)."""
    try:
        _check_events(path, text, _LOADER)
    except yaml.YAMLError:
        if _LOADER is not yaml.SafeLoader:
            # libyaml's scanner reads ahead and stops at its own depth limit (1,000) before
            # the events reach the first level too deep: the pure-Python parser names it.
            _check_events(path, text, yaml.SafeLoader)
        raise


def _check_events(path: Path, text: str, loader: Any) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=loader):
        line = f", line {event.start_mark.line + 1}" if event.start_mark else ""
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"{path}{line}: YAML aliases"
                              f" (*{event.anchor}) are not accepted; write the value out in"
                              " full")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{path}{line}: nested deeper than {MAX_DEPTH} levels;"
                                  " drp's files need a few (a list of people, each a mapping)")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# libyaml's parser where PyYAML was built with it (the same safe loader's types, scanned in
# C: a small file in 1-2 ms, where the pure-Python parser took 10-13 ms).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> LoadedYaml:
    text = _read_text(path)
    try:
        _refuse_aliases(path, text)
        loader = _LOADER(text)
        try:  # parsed once: the nodes (for their lines) and the data built from them
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = getattr(exc, "position", None)  # a character YAML refuses (a control character)
        line = (f", line {mark.line + 1}" if mark else
                f", line {text[:at].count(chr(10)) + 1}" if isinstance(at, int) else "")
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from None
    lines = _Lines()
    if node is not None:
        lines.walk(node)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    return LoadedYaml(path, data, lines)
