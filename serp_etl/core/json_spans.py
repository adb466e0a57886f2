"""Byte spans of a JSON array's elements, so that each one can be kept as the exact bytes it
arrived as (a SERP among the 100 of a retrieve answer, a task among an envelope's) or decoded
on its own (the items of a SERP too big to decode whole).

Strict JSON takes a fast path: msgspec reads the document once, skipping everything off the
path, and keeps the array's elements as ``msgspec.Raw``, views of the document's own bytes,
whose places in it are the spans (about 90 times faster than the tokenizer on 8 and 66 MB
bodies, the same spans: bench/spans_bench.py). What msgspec refuses (a raw control character,
a lone surrogate, a truncation) goes to a tokenizer of strings and brackets only, by regular
expression: it does not validate the document, so spans before a truncation or a stray
control character are still right; Python touches every token there. A key on the path given
twice: the fast path follows the last one (as the decoders here keep the last value), the
tokenizer the first.
"""

from __future__ import annotations

import functools
import json
import re
import types
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

# A string (escapes and raw control characters included) or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")
Span = tuple[int, int]
Path = tuple[str | int, ...]
Document = bytes | memoryview


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
    if parent.kind == b"[":
        return (*parent.path, parent.index)
    # A member whose key was not read (a document broken there) is on no path asked for.
    return (*parent.path, "" if parent.key is None else parent.key)


def _end_before(data: Document, start: int, end: int) -> int:
    while end > start and data[end - 1] in b" \t\r\n":
        end -= 1
    return end


def array_spans(data: Document, path: Path) -> tuple[Span, list[Span]] | None:
    """The span of the array at ``path`` (object keys and array indexes from the root) and the
    spans of its elements, or None if the document has no array there."""
    try:
        try:
            return _one_pass_spans(data, path)
        except msgspec.ValidationError:  # another element of an array on the path differs
            return _strict_spans(data, path)
    except msgspec.ValidationError:  # a valid document without an array at ``path``
        return None
    except (msgspec.DecodeError, RecursionError):  # not strict JSON, or nested too deeply
        return _tokenized_spans(data, path)  # for msgspec: what the tokenizer reads


_RAWS = list[msgspec.Raw]


@functools.lru_cache(maxsize=16)
def _path_type(path: Path) -> Any:
    """A type that decodes the whole document in one pass, skipping everything off ``path``
    and keeping the elements of its array as ``Raw``."""
    shape: Any = _RAWS  # a type made at run time: a struct, or a list of one
    for step in reversed(path):
        if isinstance(step, str):
            shape = msgspec.defstruct(
                "Member", [("value", shape | None, None)], rename={"value": step}
            )
        else:
            shape = types.GenericAlias(list, shape | None)
    return shape


def _address(buffer: Document | msgspec.Raw) -> int:
    """Where ``buffer``'s bytes are in memory (a ``Raw`` is a view of the document's)."""
    return np.frombuffer(buffer, dtype=np.uint8).ctypes.data


def _one_pass_spans(data: Document, path: Path) -> tuple[Span, list[Span]] | None:
    value: Any = msgspec.json.decode(data, type=_path_type(path))
    for step in path:
        if isinstance(step, str):
            value = value.value
        else:
            value = value[step] if 0 <= step < len(value) else None
        if value is None:
            return None
    if not value:  # an empty array: where it is, the next way says
        raise msgspec.ValidationError("an empty array")
    elements = _element_spans(data, value)
    # Only whitespace lies between the array's brackets and its first and last elements.
    start = elements[0][0] - 1
    while data[start] in _SPACE:
        start -= 1
    return (start, _matched_end(_CLOSE, data, elements[-1][1])), elements


_SEPARATOR = re.compile(rb"[ \t\r\n]*,?[ \t\r\n]*")
_CLOSE = re.compile(rb"[ \t\r\n]*\]")
_SPACE = b" \t\r\n"


def _matched_end(pattern: re.Pattern[bytes], data: Document, position: int) -> int:
    found = pattern.match(data, position)
    if found is None:  # bytes not where msgspec's reading puts them: the tokenizer reads it
        raise msgspec.DecodeError(f"no {pattern.pattern!r} at byte {position}")
    return found.end()


def _element_spans(data: Document, raws: list[msgspec.Raw]) -> list[Span]:
    """Where each of an array's consecutive elements is in ``data``: the first by its
    address, each next one after the separator that follows the one before (in a document
    msgspec read, whitespace and one comma). Checked, not assumed: a ``Raw`` that is not a
    view of the document, or an element whose bytes are not where it says, is refused."""
    if not raws:
        return []
    start = _address(raws[0]) - _address(data)
    spans = []
    for raw in raws:
        end = start + len(raw)
        spans.append((start, end))
        start = _matched_end(_SEPARATOR, data, end)
    first, last = spans[0][0], spans[-1][1]
    # Another object's bytes cannot lie inside the document's; the last element must end
    # where its own bytes do.
    if not 0 <= first <= last <= len(data) or _address(raws[-1]) - _address(data) != spans[-1][0]:
        raise msgspec.DecodeError("a value that is not a view of the document")
    return spans


def _strict_spans(data: Document, path: Path) -> tuple[Span, list[Span]] | None:
    """The same in one decode per step of the path (each array on it read as ``Raw``
    elements): what the one pass cannot shape (an array whose other elements differ)."""
    value: Any = data
    for step in path:
        if isinstance(step, str):
            value = msgspec.json.decode(value, type=dict[str, msgspec.Raw]).get(step)
        else:
            found = msgspec.json.decode(value, type=_RAWS)
            value = found[step] if 0 <= step < len(found) else None
        if value is None:
            return None
    (array,) = _element_spans(data, [value])
    return array, _element_spans(data, msgspec.json.decode(value, type=_RAWS))


def _tokenized_spans(data: Document, path: Path) -> tuple[Span, list[Span]] | None:
    stack: list[_Container] = []
    for match in _TOKEN.finditer(data):
        token = match.group()
        char = token[:1]
        top = stack[-1] if stack else None
        if char == b'"':
            if top is not None and top.expect_key:
                top.key = _key(token)
        elif char in b"{[":
            container = _Container(
                char, _value_path(top) if top else (), match.start(), expect_key=char == b"{"
            )
            if char == b"[" and container.path == path:
                container.element_start = _next_value(data, match.end())
            stack.append(container)
        elif top is None:
            return None  # a stray "]", "," or ":" before anything opened: not a document
        elif char == b":":
            top.expect_key = False
        elif char == b",":
            if top.kind == b"{":
                top.expect_key, top.key = True, None
                continue
            top.index += 1
            if top.element_start is not None:
                top.elements.append(
                    (top.element_start, _end_before(data, top.element_start, match.start()))
                )
                top.element_start = _next_value(data, match.end())
        else:  # a closing bracket
            stack.pop()
            if top.element_start is not None:
                if top.element_start < match.start():  # the last element; none if empty
                    top.elements.append(
                        (top.element_start, _end_before(data, top.element_start, match.start()))
                    )
                return (top.start, match.end()), top.elements
    return None


def _next_value(data: Document, position: int) -> int:
    following = _NOT_SPACE.search(data, position)
    return following.start() if following else len(data)
