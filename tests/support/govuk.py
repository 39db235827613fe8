"""Reading a page built on GOV.UK Frontend in a test: where a field's error is shown (its form
group marked `govuk-form-group--error` with a `govuk-error-message` inside), and what the error
summary lists. A small tree from the standard library's HTML parser, enough for drp's pages."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

INLINE = {"a", "abbr", "b", "code", "em", "i", "small", "span", "strong", "time"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The node's text as a reader sees it: whitespace collapsed, entities decoded, a
        space between blocks (not around a link or a span within a sentence)."""
        return " ".join(self._raw().split())

    def _raw(self) -> str:
        parts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif child.tag in INLINE:
                parts.append(child._raw())
            else:
                parts.append(f" {child._raw()} ")
        return "".join(parts)

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            if isinstance(child, Node):
                out.extend(child.walk())
        return out

    def by_class(self, name: str) -> list[Node]:
        return [n for n in self.walk() if name in n.classes]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.at = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.at))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data: str) -> None:
        self.at.children.append(data)


def tree(page: str) -> Node:
    parser = _Tree()
    parser.feed(page)
    parser.close()
    return parser.root


def words(page: str) -> str:
    """A page's text as a reader sees it (Node.text): what a test of what it says reads."""
    return tree(page).text()


def by_id(root: Node, node_id: str) -> Node | None:
    return next((n for n in root.walk() if n.attrs.get("id") == node_id), None)


def error_group(page: str, field_id: str) -> Node:
    """The form group in error holding the field `field_id` (a date's day has its date's
    name), asserting that it is marked and shows its message."""
    root = tree(page)
    node = by_id(root, field_id)
    assert node is not None, f"no field {field_id}"
    group = node.parent
    while group is not None and "govuk-form-group--error" not in group.classes:
        group = group.parent
    assert group is not None, f"{field_id} is not marked in error"
    messages = group.by_class("govuk-error-message")
    assert messages and messages[0].text().removeprefix("Error:").strip(), \
        f"no message next to {field_id}"
    return group


def error_message(page: str, field_id: str) -> str:
    """The message shown beside the field (without GOV.UK's hidden "Error:")."""
    group = error_group(page, field_id)
    return group.by_class("govuk-error-message")[0].text().removeprefix("Error:").strip()


def summary_links(page: str) -> list[tuple[str, str]]:
    """The error summary's (field id, message) pairs, in order."""
    if "govuk-error-summary" not in page:
        return []
    block = page.split('class="govuk-error-summary', 1)[1].split("</ul>", 1)[0]
    return [(href, html.unescape(" ".join(text.split()))) for href, text in
            re.findall(r'<a href="#([^"]+)"[^>]*>(.*?)</a>', block, re.S)]


def marked_fields(page: str) -> set[str]:
    """The ids of the fields inside form groups marked in error."""
    out: set[str] = set()
    for group in tree(page).by_class("govuk-form-group--error"):
        out |= {n.attrs["id"] for n in group.walk()
                if n.tag in ("input", "textarea", "select") and "id" in n.attrs}
    return out


def links(page: str) -> list[tuple[str, str]]:
    """Every link's (href, text), in order."""
    return [(n.attrs.get("href", ""), n.text()) for n in tree(page).walk() if n.tag == "a"]


def typed(page: str, name: str) -> str | None:
    """What a field named `name` holds as the page shows it: an input's value, a textarea's
    text, a select's chosen option (None when there is no such field)."""
    for n in tree(page).walk():
        if n.attrs.get("name") != name:
            continue
        if n.tag == "textarea":
            return "".join(c for c in n.children if isinstance(c, str)).strip("\n")
        if n.tag == "select":
            chosen = [o for o in n.walk() if o.tag == "option" and "selected" in o.attrs]
            return chosen[0].attrs.get("value", chosen[0].text()) if chosen else ""
        if n.tag == "input" and n.attrs.get("type") in ("radio", "checkbox"):
            if "checked" in n.attrs:
                return n.attrs.get("value", "")
            continue
        if n.tag == "input":
            return n.attrs.get("value", "")
    return None


def banner(page: str) -> str | None:
    """The text of the page's notification banner (a success), if it has one."""
    found = tree(page).by_class("govuk-notification-banner")
    return found[0].text() if found else None
