"""JSON as real APIs send it: strict and fast when it is clean, lenient where a reader may be.

``decode`` tries orjson first. A document orjson refuses is decoded again with these repairs,
each named in what is returned, so that a check can count them (the received bytes are kept
unchanged in the raw layer; only the decoded values are repaired):

* ``bom``: a UTF-8 byte order mark before the document is ignored (RFC 8259 lets a parser);
* ``invalid_utf8``: bytes that are not UTF-8 become U+FFFD;
* ``control_character``: a raw control character inside a string (a newline, ``\\x01``...) is
  kept as the character itself, as if it had been escaped;
* ``lone_surrogate``: a ``\\ud83d`` escape without its pair (what truncating an emoji makes)
  becomes U+FFFD;
* ``number_out_of_range``: a number no double can hold (``1e309``), or ``NaN``/``Infinity``,
  is kept as its text, so that a typed column reports it in ``invalid_values`` instead of
  storing infinity;
* ``duplicate_key``: an object with the same key twice keeps the last value (as every JSON
  reader does), and the document is marked: its first value is in the bytes kept (a duplicate
  ``type``, say, changes which table an item lands in). Looked for where a document enters
  the raw layer (``decode(..., duplicates=True)``), even when orjson read it.

What cannot be decoded even so (truncated, not JSON, nested deeper than a reader's stack)
raises ``Undecodable`` with orjson's description of what is wrong and where.

``json_text`` writes a decoded value back as JSON text at any depth (orjson stops at 255
levels): what the flatteners keep of undeclared values.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Undecodable(ValueError):
    """Not JSON even for a lenient reader: truncated, empty, or something else."""


def decode(data: bytes | memoryview, *, duplicates: bool = False) -> tuple[Any, tuple[str, ...]]:
    """The document's value, and the repairs it needed (sorted; empty when it was clean).
    ``duplicates``: also look for an object with a key twice (``duplicate_key``), where a
    document enters the raw layer; re-reading a stored body need not look again."""
    value, repairs = _decode(data)
    if duplicates and _has_duplicate_keys(data, value):
        repairs = tuple(sorted({*repairs, "duplicate_key"}))
    return value, repairs


def _has_duplicate_keys(data: bytes | memoryview, value: Any) -> bool:
    """Whether an object of the document has a key twice (every reader keeps the last value,
    silently). Cheap when it has not: its keys are counted in the bytes and in the decoded
    value written back, the same way (a quote then a colon, whitespace between them removed,
    an escaped quote inside a string not counted), and only when the counts differ is it read
    again, key by key."""
    if _keys(bytes(data).translate(None, b" \t\n\r")) == _keys(json_bytes(value)):
        return False
    seen_twice = False

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal seen_twice
        keys = [key for key, _ in items]
        seen_twice = seen_twice or len(set(keys)) != len(keys)
        return dict(items)

    text = bytes(data).removeprefix(BOM).decode("utf-8", "replace")
    try:
        json.loads(
            text, strict=False, object_pairs_hook=pairs, parse_constant=lambda literal: literal
        )
    except (json.JSONDecodeError, RecursionError):
        return False
    return seen_twice


def _keys(compact: bytes) -> int:
    """Object keys in JSON text without whitespace: a closing quote before a colon (inside a
    string, a quote is escaped)."""
    return compact.count(b'":') - compact.count(b'\\":')


def _decode(data: bytes | memoryview) -> tuple[Any, tuple[str, ...]]:
    try:
        return orjson.loads(data), ()
    except orjson.JSONDecodeError as strict_error:
        reason = str(strict_error)
    data = bytes(data)
    if not data.strip():
        raise Undecodable("empty document")
    repairs: set[str] = set()
    if data.startswith(BOM):
        data = data[len(BOM) :]
        repairs.add("bom")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        repairs.add("invalid_utf8")

    def keep_as_text(literal: str) -> object:
        repairs.add("number_out_of_range")
        return literal

    def number(literal: str) -> object:
        value = float(literal)
        return value if math.isfinite(value) else keep_as_text(literal)

    try:
        try:
            value = json.loads(text, parse_float=number, parse_constant=keep_as_text)
        except json.JSONDecodeError as error:
            if not error.msg.startswith("Invalid control character"):
                raise
            value = json.loads(text, strict=False, parse_float=number, parse_constant=keep_as_text)
            repairs.add("control_character")
    except json.JSONDecodeError:
        raise Undecodable(reason) from None
    except RecursionError:
        raise Undecodable(f"{reason} (nested deeper than this reader follows)") from None
    if _SURROGATE_ESCAPE.search(data):
        value, replaced = _replace_surrogates(value)
        if replaced:
            repairs.add("lone_surrogate")
    return value, tuple(sorted(repairs))


class _Literal(str):
    """Text to write as it is (punctuation), told apart from the document's own strings."""


def json_number(value: object) -> float | None:
    """A JSON number (a cost, a balance) as a float; None for anything else, a bool too
    (Python's bool is an int, JSON's true is not a number). Strict, where a provider's field
    is a number: ``core.flatten.as_number`` also takes decimal text."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def json_text(value: Any) -> str:
    """``value`` as JSON text, however deeply nested."""
    return json_bytes(value).decode()


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON, UTF-8, however deeply nested."""
    try:
        return orjson.dumps(value)
    except TypeError as error:
        if "Recursion limit" not in str(error):
            raise
    # Deeper than orjson writes: one value at a time, from an explicit stack.
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Literal:
            out.append(item)
        elif isinstance(item, dict):
            stack.append(_Literal("}"))
            for number, (key, child) in enumerate(reversed(item.items())):
                stack.extend([child, _Literal(orjson.dumps(str(key)).decode() + ":")])
                if number < len(item) - 1:
                    stack.append(_Literal(","))
            stack.append(_Literal("{"))
        elif isinstance(item, list):
            stack.append(_Literal("]"))
            for number, child in enumerate(reversed(item)):
                stack.append(child)
                if number < len(item) - 1:
                    stack.append(_Literal(","))
            stack.append(_Literal("["))
        else:
            out.append(orjson.dumps(item).decode())
    return "".join(out).encode()


def _replace_surrogates(value: Any) -> tuple[Any, bool]:
    """``value`` with every lone surrogate (the only surrogates left after decoding: pairs are
    joined) replaced by U+FFFD, in keys and strings at any depth."""
    if isinstance(value, str):
        replaced = _SURROGATE.sub("\ufffd", value)
        return replaced, replaced != value
    if isinstance(value, list):
        pairs = [_replace_surrogates(v) for v in value]
        return [v for v, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(value, dict):
        fixed: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = _replace_surrogates(key)
            fixed[new_key], item_changed = _replace_surrogates(item)
            changed |= key_changed or item_changed
        return fixed, changed
    return value, False
