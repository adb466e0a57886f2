"""Schema-driven flattening of nested JSON objects into typed Arrow tables.

A provider declares each table once, as a tree of fields; everything else is derived from that
declaration: the pyarrow schema, the column names and the child tables. The naming rule:

* a nested **object** becomes prefixed columns (``rating.value`` -> ``rating_value``; a field
  that already starts with the prefix keeps its name: ``rating.rating_type`` -> ``rating_type``);
* a nested **array of objects** becomes a child table ``<parent>_<field>``, keyed by the parent's
  keys plus ``<field>_index`` (the element's 0-based position in the array);
* an array of strings stays a ``list<string>`` column;
* a date-time (``DATETIME``) becomes an instant (``timestamp[us, UTC]``, TIMESTAMPTZ in DuckDB)
  and, where its text says more than the instant (an offset other than UTC), that text in
  ``<name>_text``.

Nothing is dropped silently. Keys the declaration does not know go, as JSON, to the row's
``extra`` column; a value of the wrong type (a string where a number belongs, an object where a
string belongs) becomes null and its raw value goes, as JSON, to ``invalid_values``.

Type checks happen here, in Python, because ``pyarrow.array`` coerces silently: ``1.5`` into an
int64 column becomes ``1``, ``True`` into a float64 column becomes ``1.0`` and a string into a
``list<string>`` column becomes a list of its characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import pyarrow as pa

from serp_etl.core.column_kinds import json_field, text_field
from serp_etl.core.jsondecode import json_text

EXTRA_COLUMN = "extra"
INVALID_COLUMN = "invalid_values"
# Every flattened row's lineage: the version of the response it came from (``with_lineage``).
LINEAGE_COLUMN = "content_hash"
LINEAGE_FIELD = pa.field(LINEAGE_COLUMN, pa.string())

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NONE_TYPE = type(None)
_OBJECT_TYPES = frozenset({dict, _NONE_TYPE})
_STR_TYPE = frozenset({str})
_LIST_TYPES = frozenset({list, _NONE_TYPE})
_DICT_TYPE = frozenset({dict})


@dataclass(frozen=True)
class Scalar:
    """A leaf value: string, int64, float64 or bool (or a list of strings).

    ``arrow_is_strict``: pyarrow itself refuses every value of another type for this one, so
    the Python-side check can be skipped until pyarrow complains.
    """

    arrow_type: pa.DataType
    allowed: frozenset[type]
    arrow_is_strict: bool = False

    def accepts(self, value: Any) -> bool:
        kind = type(value)
        if kind not in self.allowed:
            return False
        if kind is int:
            return _INT64_MIN <= value <= _INT64_MAX
        if kind is list:
            return all(type(element) is str for element in value)
        return True

    def convert(self, value: Any) -> Any:
        """An accepted value as pyarrow takes it."""
        return value


@dataclass(frozen=True)
class Integer(Scalar):
    """An int64. A float that is an exact integer (``12.0``, ``1E2``: how some writers put a
    whole number) is that integer; any other float is a wrong type."""

    def accepts(self, value: Any) -> bool:
        if type(value) is float:
            return value.is_integer() and _INT64_MIN <= value <= _INT64_MAX
        return super().accepts(value)

    def convert(self, value: Any) -> Any:
        return int(value) if type(value) is float else value


STRING = Scalar(pa.string(), frozenset({str}), arrow_is_strict=True)
INT = Integer(pa.int64(), frozenset({int}))
# Prices and ratings drift between int and float in the wild: they are always floats.
FLOAT = Scalar(pa.float64(), frozenset({int, float}))
BOOL = Scalar(pa.bool_(), frozenset({bool}), arrow_is_strict=True)


@dataclass(frozen=True)
class NumericText(Scalar):
    """A float that some APIs send as a decimal string ("0.00010"): both are read."""

    def accepts(self, value: Any) -> bool:
        return super().accepts(value) or (type(value) is str and _as_float(value) is not None)

    def convert(self, value: Any) -> Any:
        return _as_float(value) if type(value) is str else value


def _as_float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


NUMERIC_TEXT = NumericText(pa.float64(), frozenset({int, float}))


def as_number(value: Any) -> float | None:
    """A number, or a decimal string, as a float; anything else as None."""
    return (
        float(NUMERIC_TEXT.convert(value))
        if value is not None and NUMERIC_TEXT.accepts(value)
        else None
    )


STRING_LIST = Scalar(pa.list_(pa.string()), frozenset({list}))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def parse_datetime(text: str) -> datetime | None:
    """An instant from ISO 8601 text, or DataForSEO's ``2019-11-15 12:57:46 +00:00``; text
    without an offset is UTC (both providers document UTC). None for anything else."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        head, _, offset = text.rpartition(" ")  # a space before the offset
        if not head or offset[:1] not in ("+", "-"):
            return None
        try:
            value = datetime.fromisoformat(head + offset)
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A date-time's text is read twice (its instant, then whether to keep the text): once, here.
@lru_cache(maxsize=8192)
def _instant(text: str) -> tuple[int, bool] | None:
    """Microseconds since the epoch (pyarrow takes an int as it is, but converts each aware
    datetime through Python calls, twenty times slower), and whether the offset is not UTC."""
    parsed = parse_datetime(text)
    if parsed is None:
        return None
    return (parsed - _EPOCH) // _MICROSECOND, bool(parsed.utcoffset())


# What ``Parsed.read`` returns for a value that is not one of its kind.
INVALID = object()


@dataclass(frozen=True)
class Parsed(Scalar):
    """A value that is read into another (text into an instant), one by one: ``read`` gives
    the value pyarrow takes, or ``INVALID``."""

    def read(self, value: Any) -> Any:
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        return self.read(value) is not INVALID

    def convert(self, value: Any) -> Any:
        return self.read(value)


@dataclass(frozen=True)
class DateTime(Parsed):
    """Date-time text, read as an instant; text that is not one is an invalid value."""

    def read(self, value: Any) -> Any:
        if value is None:
            return None
        instant = _instant(value) if type(value) is str else None
        return INVALID if instant is None else instant[0]


@dataclass(frozen=True)
class DateTimeText(Parsed):
    """The text of a date-time, kept where its offset is not UTC (the instant alone would lose
    the local time); never an invalid value of its own (its date-time column says so)."""

    def read(self, value: Any) -> Any:
        instant = _instant(value) if type(value) is str else None
        return value if instant is not None and instant[1] else None


DATETIME = DateTime(pa.timestamp("us", tz="UTC"), frozenset())
DATETIME_TEXT = DateTimeText(pa.string(), frozenset())


@dataclass(frozen=True)
class Obj:
    """A nested object, flattened into prefixed columns of its parent's table."""

    fields: dict[str, Field]


@dataclass(frozen=True)
class Children:
    """A nested array of objects, flattened into a child table."""

    fields: dict[str, Field]


Field = Scalar | Obj | Children


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]
    scalar: Scalar
    source: str = ""  # the column whose values this one derives from (a date-time's text)

    def field(self) -> pa.Field:
        if self.scalar is DATETIME_TEXT:
            return text_field(self.source)
        return pa.field(self.name, self.scalar.arrow_type)


@dataclass(frozen=True)
class TableSpec:
    """One output table: its key columns and the declared fields of the objects it holds."""

    name: str
    keys: tuple[tuple[str, pa.DataType], ...]
    fields: dict[str, Field]
    columns: tuple[Column, ...] = field(init=False)
    children: tuple[tuple[tuple[str, ...], TableSpec], ...] = field(init=False)
    schema: pa.Schema = field(init=False)

    def __post_init__(self) -> None:
        columns: list[Column] = []
        children: list[tuple[tuple[str, ...], TableSpec]] = []
        _compile(self.name, self.keys, self.fields, (), "", columns, children)
        names = [key for key, _ in self.keys] + [c.name for c in columns]
        names += [EXTRA_COLUMN, INVALID_COLUMN, LINEAGE_COLUMN]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        schema = pa.schema(
            [pa.field(key, arrow_type, nullable=False) for key, arrow_type in self.keys]
            + [c.field() for c in columns]
            + [json_field(EXTRA_COLUMN), json_field(INVALID_COLUMN), LINEAGE_FIELD]
        )
        object.__setattr__(self, "columns", tuple(columns))
        object.__setattr__(self, "children", tuple(children))
        object.__setattr__(self, "schema", schema)

    def walk(self) -> list[TableSpec]:
        """This table and every descendant, parents first."""
        tables = [self]
        for _, child in self.children:
            tables.extend(child.walk())
        return tables


def column_name(prefix: str, name: str) -> str:
    if not prefix or name.startswith(prefix + "_"):
        return name
    return f"{prefix}_{name}"


def _compile(table, keys, fields, path, prefix, columns, children) -> None:
    for name, spec in fields.items():
        if isinstance(spec, Scalar):
            columns.append(Column(column_name(prefix, name), path + (name,), spec))
            if spec is DATETIME:
                text = text_field(columns[-1].name).name
                columns.append(Column(text, path + (name,), DATETIME_TEXT, columns[-1].name))
        elif isinstance(spec, Obj):
            _compile(
                table,
                keys,
                spec.fields,
                path + (name,),
                column_name(prefix, name),
                columns,
                children,
            )
        else:
            child_path = path + (name,)
            suffix = "_".join(child_path)
            child = TableSpec(
                name=f"{table}_{suffix}",
                keys=keys + ((f"{suffix}_index", pa.int32()),),
                fields=spec.fields,
            )
            children.append((child_path, child))


class _RowNotes:
    """Per-row ``extra`` and ``invalid_values`` dictionaries, created only when needed."""

    __slots__ = ("extra", "invalid")

    def __init__(self, n: int) -> None:
        self.extra: list[dict | None] = [None] * n
        self.invalid: list[dict | None] = [None] * n

    def add_extra(self, row: int, name: str, value: Any) -> None:
        notes = self.extra[row]
        if notes is None:
            notes = self.extra[row] = {}
        notes[name] = value

    def add_invalid(self, row: int, name: str, value: Any) -> None:
        notes = self.invalid[row]
        if notes is None:
            notes = self.invalid[row] = {}
        notes[name] = value


def _json_column(notes: list[dict | None]) -> pa.Array:
    if not any(notes):  # the common case: nothing undeclared in the whole batch
        return pa.nulls(len(notes), type=pa.string())
    return pa.array([None if n is None else json_text(n) for n in notes], type=pa.string())


def _typed_array(values: Sequence, scalar: Scalar, name: str, notes: _RowNotes) -> pa.Array:
    if isinstance(scalar, Parsed):
        clean = [None] * len(values)
        read = scalar.read
        for row in [row for row, value in enumerate(values) if value is not None]:
            value = read(values[row])
            if value is INVALID:
                notes.add_invalid(row, name, values[row])
            else:
                clean[row] = value
        return pa.array(clean, type=scalar.arrow_type)
    if scalar.arrow_is_strict:
        fast = True
    else:
        present = set(map(type, values))
        present.discard(_NONE_TYPE)
        fast = present <= scalar.allowed
        if fast and scalar is STRING_LIST:
            fast = set(map(type, chain.from_iterable(filter(None, values)))) <= _STR_TYPE
    if fast:
        try:
            return pa.array(values, type=scalar.arrow_type)
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # a wrong type, or an int beyond int64: sort it out value by value below
    clean = []
    for row, value in enumerate(values):
        if value is None or scalar.accepts(value):
            clean.append(scalar.convert(value))
        else:
            clean.append(None)
            notes.add_invalid(row, name, value)
    return pa.array(clean, type=scalar.arrow_type)


def _getter(names: tuple[str, ...]):
    if len(names) == 1:
        (name,) = names
        return lambda obj: (obj[name],)
    return itemgetter(*names)


def _extract_level(
    fields: dict[str, Field],
    path: tuple[str, ...],
    prefix: str,
    objs: Sequence[dict | None],
    out: dict,
    notes: _RowNotes,
) -> None:
    """Values of every field declared at this object level, for every row, into ``out``.

    ``out`` maps a column name to its values and a child path to its arrays. The common case,
    an object with exactly the declared keys, costs one C-level ``itemgetter`` call; objects
    with missing or unknown keys take the slow path, where unknown keys are noted as extra.
    """
    names = tuple(fields)
    getter = _getter(names)
    nones = (None,) * len(names)
    try:
        if None in objs:
            rows = [nones if obj is None else getter(obj) for obj in objs]
        else:
            rows = list(map(getter, objs))
        if set(map(len, filter(None, objs))) - {len(names)}:
            for row, obj in enumerate(objs):
                if obj is not None and len(obj) != len(names):
                    _note_extra(obj, fields, path, row, notes)
    except KeyError:
        rows = []
        for row, obj in enumerate(objs):
            if obj is None:
                rows.append(nones)
                continue
            if not obj.keys() <= fields.keys():
                _note_extra(obj, fields, path, row, notes)
            rows.append(tuple(map(obj.get, names)))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    for name, spec, values in zip(names, fields.values(), columns, strict=True):
        if isinstance(spec, Scalar):
            out[column_name(prefix, name)] = values
        elif isinstance(spec, Children):
            out[path + (name,)] = values
        else:
            sub_prefix = column_name(prefix, name)
            objects: Sequence = values
            if not set(map(type, values)) <= _OBJECT_TYPES:
                objects = list(values)
                for row, value in enumerate(objects):
                    if value is not None and type(value) is not dict:
                        notes.add_invalid(row, sub_prefix, value)
                        objects[row] = None
            _extract_level(spec.fields, path + (name,), sub_prefix, objects, out, notes)


def _note_extra(obj: dict, fields: dict, path: tuple[str, ...], row: int, notes: _RowNotes) -> None:
    for key in obj.keys() - fields.keys():
        notes.add_extra(row, ".".join(path + (key,)), obj[key])


def _explode(
    column: Sequence, key_columns: list[list], name: str, notes: _RowNotes
) -> tuple[list[list], list[dict]]:
    """The elements of each row's array as child rows: their keys (the row's keys plus the
    element's position) and the element objects. Non-arrays and non-object elements are noted
    as invalid values of the row."""
    rows = [row for row, elements in enumerate(column) if elements is not None]
    arrays = [column[row] for row in rows]
    if set(map(type, arrays)) <= _LIST_TYPES:
        elements = list(chain.from_iterable(arrays))
        if set(map(type, elements)) <= _DICT_TYPE:  # the common case, in C loops
            counts = list(map(len, arrays))
            fast_keys = [
                list(chain.from_iterable(map(repeat, (values[r] for r in rows), counts)))
                for values in key_columns
            ]
            fast_keys.append(list(chain.from_iterable(map(range, counts))))
            return fast_keys, elements
    keys: list[list] = [[] for _ in range(len(key_columns) + 1)]
    objs: list[dict] = []
    for row, elements in zip(rows, arrays, strict=True):
        if type(elements) is not list:
            notes.add_invalid(row, name, elements)
            continue
        strays = [e for e in elements if type(e) is not dict]
        if strays:
            notes.add_invalid(row, name, strays)
        for position, element in enumerate(elements):
            if type(element) is dict:
                for k, values in enumerate(key_columns):
                    keys[k].append(values[row])
                keys[-1].append(position)
                objs.append(element)
    return keys, objs


def flatten_table(
    spec: TableSpec, key_columns: list[list], objs: list[dict]
) -> dict[str, pa.Table]:
    """Flatten ``objs`` (the rows of ``spec``, already dicts) into this table and its children.

    ``key_columns`` holds one list per key of ``spec``, each as long as ``objs``.
    Returns one ``pyarrow.Table`` per table in ``spec.walk()``, empty ones included.
    """
    notes = _RowNotes(len(objs))
    values: dict = {}
    _extract_level(spec.fields, (), "", objs, values, notes)
    arrays: list[pa.Array] = [
        pa.array(keys, type=arrow_type)
        for keys, (_, arrow_type) in zip(key_columns, spec.keys, strict=True)
    ]
    for column in spec.columns:
        arrays.append(
            _typed_array(values[column.source or column.name], column.scalar, column.name, notes)
        )

    tables: dict[str, pa.Table] = {}
    for child_path, child in spec.children:
        child_keys, child_objs = _explode(
            values[child_path], key_columns, "_".join(child_path), notes
        )
        tables.update(flatten_table(child, child_keys, child_objs))

    arrays.append(_json_column(notes.extra))
    arrays.append(_json_column(notes.invalid))
    arrays.append(pa.nulls(len(objs), pa.string()))  # set by ``with_lineage``
    return {spec.name: pa.Table.from_arrays(arrays, schema=spec.schema), **tables}


def with_lineage(
    tables: Mapping[str, pa.Table],
    task_ids: pa.Array | pa.ChunkedArray,
    versions: pa.Array | pa.ChunkedArray,
) -> dict[str, pa.Table]:
    """``tables`` with each row's ``content_hash``: the version (``versions``, beside
    ``task_ids``) of the response its task's id (a flattened table's first column) names.
    Each task is in ``task_ids`` once: its latest version, the one flattened."""
    import pyarrow.compute as pc

    ids = task_ids.combine_chunks() if isinstance(task_ids, pa.ChunkedArray) else task_ids
    hashes = versions.combine_chunks() if isinstance(versions, pa.ChunkedArray) else versions
    lined = {}
    for name, table in tables.items():
        where = pc.index_in(table.column(0), value_set=ids)
        lined[name] = table.set_column(
            table.schema.get_field_index(LINEAGE_COLUMN), LINEAGE_FIELD, pc.take(hashes, where)
        )
    return lined
