"""What a column holds beyond its Arrow type, kept in its field's metadata: the warehouse's
views read it (``core.views``) to type JSON text as JSON and to rebuild a date-time's original
text from parts written before date-times were typed."""

from __future__ import annotations

import pyarrow as pa

KEY = b"serp_etl"
JSON_TEXT = b"json"
TEXT_OF = b"text_of:"


def json_field(name: str) -> pa.Field:
    """A column of JSON text."""
    return pa.field(name, pa.string(), metadata={KEY: JSON_TEXT})


def text_field(of: str) -> pa.Field:
    """``<of>_text``: the original text of date-time column ``of``, where it says more than
    the instant (an offset other than UTC)."""
    return pa.field(f"{of}_text", pa.string(), metadata={KEY: TEXT_OF + of.encode()})


def kind_of(field: pa.Field) -> bytes:
    return (field.metadata or {}).get(KEY, b"")
