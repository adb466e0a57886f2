"""Byte spans of a JSON array's elements, so that each one can be kept as the exact bytes it
arrived as (a SERP among the 100 of a retrieve answer, a task among an envelope's) or decoded
on its own (the items of a SERP too big to decode whole).

A tokenizer of strings and brackets only, by regular expression: it does not validate the
document, so spans before a truncation or a stray control character are still right. Python
touches every token: use it where the spans are needed, not on every document.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# A string (escapes and raw control characters included) or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
Span = tuple[int, int]
Path = tuple[str | int, ...]


@dataclass
class _Container:
    kind: bytes  # b"{" or b"["
    path: Path
    start: int
    key: str | None = None  # objects: the member being read
    expect_key: bool = False
    index: int = 0  # arrays: the element being read
    element_start: int | None = None  # the target array only: where its element begins
    elements: list[Span] = field(default_factory=list)  # the target array only


def _key(token: bytes) -> str:
    if b"\\" not in token:
        return token[1:-1].decode("utf-8", "replace")
    return json.loads(token.decode("utf-8", "replace"), strict=False)


def _value_path(parent: _Container) -> Path:
    return parent.path + ((parent.key,) if parent.kind == b"{" else (parent.index,))


def _end_before(data: bytes, start: int, end: int) -> int:
    while end > start and data[end - 1] in b" \t\r\n":
        end -= 1
    return end


def array_spans(data: bytes, path: Path) -> tuple[Span, list[Span]] | None:
    """The span of the array at ``path`` (object keys and array indexes from the root) and the
    spans of its elements, or None if the document has no array there."""
    stack: list[_Container] = []
    for match in _TOKEN.finditer(data):
        token = match.group()
        char = token[:1]
        top = stack[-1] if stack else None
        if char == b'"':
            if top is not None and top.expect_key:
                top.key = _key(token)
        elif char in b"{[":
            container = _Container(char, _value_path(top) if top else (), match.start(),
                                   expect_key=char == b"{")
            if char == b"[" and container.path == path:
                container.element_start = _next_value(data, match.end())
            stack.append(container)
        elif char == b":":
            top.expect_key = False
        elif char == b",":
            if top.kind == b"{":
                top.expect_key, top.key = True, None
                continue
            top.index += 1
            if top.element_start is not None:
                top.elements.append((top.element_start,
                                     _end_before(data, top.element_start, match.start())))
                top.element_start = _next_value(data, match.end())
        else:  # a closing bracket
            stack.pop()
            if top.element_start is not None:
                if top.element_start < match.start():  # the last element; none if empty
                    top.elements.append((top.element_start, _end_before(
                        data, top.element_start, match.start())))
                return (top.start, match.end()), top.elements
    return None


def _next_value(data: bytes, position: int) -> int:
    following = _NOT_SPACE.search(data, position)
    return following.start() if following else len(data)
