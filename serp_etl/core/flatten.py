"""Schema-driven flattening of nested JSON objects into typed Arrow tables.

A provider declares each table once, as a tree of fields; everything else is derived from that
declaration: the pyarrow schema, the column names and the child tables. The naming rule:

* a nested **object** becomes prefixed columns (``rating.value`` -> ``rating_value``; a field
  that already starts with the prefix keeps its name: ``rating.rating_type`` -> ``rating_type``);
* a nested **array of objects** becomes a child table ``<parent>_<field>``, keyed by the parent's
  keys plus ``<field>_index`` (the element's 0-based position in the array);
* an array of strings stays a ``list<string>`` column.

Nothing is dropped silently. Keys the declaration does not know go, as JSON, to the row's
``extra`` column; a value of the wrong type (a string where a number belongs, an object where a
string belongs) becomes null and its raw value goes, as JSON, to ``invalid_values``.

Type checks happen here, in Python, because ``pyarrow.array`` coerces silently: ``1.5`` into an
int64 column becomes ``1``, ``True`` into a float64 column becomes ``1.0`` and a string into a
``list<string>`` column becomes a list of its characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

EXTRA_COLUMN = "extra"
INVALID_COLUMN = "invalid_values"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NONE_TYPE = type(None)


@dataclass(frozen=True)
class Scalar:
    """A leaf value: string, int64, float64 or bool (or a list of strings)."""

    arrow_type: pa.DataType
    allowed: frozenset[type]

    def accepts(self, value: Any) -> bool:
        kind = type(value)
        if kind not in self.allowed:
            return False
        if kind is int:
            return _INT64_MIN <= value <= _INT64_MAX
        if kind is list:
            return all(type(element) is str for element in value)
        return True


STRING = Scalar(pa.string(), frozenset({str}))
INT = Scalar(pa.int64(), frozenset({int}))
# Prices and ratings drift between int and float in the wild: they are always floats.
FLOAT = Scalar(pa.float64(), frozenset({int, float}))
BOOL = Scalar(pa.bool_(), frozenset({bool}))
STRING_LIST = Scalar(pa.list_(pa.string()), frozenset({list}))


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
        names += [EXTRA_COLUMN, INVALID_COLUMN]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names in {names}")
        schema = pa.schema(
            [pa.field(key, arrow_type, nullable=False) for key, arrow_type in self.keys]
            + [pa.field(c.name, c.scalar.arrow_type) for c in columns]
            + [pa.field(EXTRA_COLUMN, pa.string()), pa.field(INVALID_COLUMN, pa.string())]
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
        elif isinstance(spec, Obj):
            _compile(table, keys, spec.fields, path + (name,), column_name(prefix, name),
                     columns, children)
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
    return pa.array(
        [None if n is None else orjson.dumps(n).decode() for n in notes], type=pa.string()
    )


def _typed_array(values: list, scalar: Scalar, name: str, notes: _RowNotes) -> pa.Array:
    present = set(map(type, values))
    present.discard(_NONE_TYPE)
    if present <= scalar.allowed:
        if scalar is STRING_LIST:
            fast = all(type(e) is str for v in values if v is not None for e in v)
        else:
            fast = True
        if fast:
            try:
                return pa.array(values, type=scalar.arrow_type)
            except (OverflowError, pa.ArrowInvalid):
                pass  # an int beyond int64: sort it out value by value below
    clean = []
    for row, value in enumerate(values):
        if value is None or scalar.accepts(value):
            clean.append(value)
        else:
            clean.append(None)
            notes.add_invalid(row, name, value)
    return pa.array(clean, type=scalar.arrow_type)


def _objects_at(
    spec: TableSpec, objs: list[dict], notes: _RowNotes
) -> dict[tuple[str, ...], list[dict | None]]:
    """The dict found at every object path of the table, one entry per row (None if absent).

    Unknown keys and non-dict values met on the way are recorded in ``notes``.
    """
    at: dict[tuple[str, ...], list[dict | None]] = {(): objs}
    _descend(spec.fields, (), "", objs, at, notes)
    return at


def _descend(fields, path, prefix, values, at, notes) -> None:
    known = fields.keys()
    for row, value in enumerate(values):
        if value is not None and not value.keys() <= known:
            for key in value.keys() - known:
                notes.add_extra(row, ".".join(path + (key,)), value[key])
    for name, spec in fields.items():
        if not isinstance(spec, Obj):
            continue
        sub_path = path + (name,)
        sub_prefix = column_name(prefix, name)
        subs: list[dict | None] = []
        for row, value in enumerate(values):
            sub = None if value is None else value.get(name)
            if sub is not None and type(sub) is not dict:
                notes.add_invalid(row, sub_prefix, sub)
                sub = None
            subs.append(sub)
        at[sub_path] = subs
        _descend(spec.fields, sub_path, sub_prefix, subs, at, notes)


def flatten_table(
    spec: TableSpec, key_columns: list[list], objs: list[dict]
) -> dict[str, pa.Table]:
    """Flatten ``objs`` (the rows of ``spec``, already dicts) into this table and its children.

    ``key_columns`` holds one list per key of ``spec``, each as long as ``objs``.
    Returns one ``pyarrow.Table`` per table in ``spec.walk()``, empty ones included.
    """
    n = len(objs)
    notes = _RowNotes(n)
    at = _objects_at(spec, objs, notes)
    arrays: list[pa.Array] = [
        pa.array(values, type=arrow_type)
        for values, (_, arrow_type) in zip(key_columns, spec.keys, strict=True)
    ]
    for column in spec.columns:
        parents = at[column.path[:-1]]
        leaf = column.path[-1]
        values = [None if p is None else p.get(leaf) for p in parents]
        arrays.append(_typed_array(values, column.scalar, column.name, notes))

    tables: dict[str, pa.Table] = {}
    for child_path, child in spec.children:
        parents = at[child_path[:-1]]
        leaf = child_path[-1]
        child_keys: list[list] = [[] for _ in child.keys]
        child_objs: list[dict] = []
        invalid_name = "_".join(child_path)
        for row, parent in enumerate(parents):
            elements = None if parent is None else parent.get(leaf)
            if elements is None:
                continue
            if type(elements) is not list:
                notes.add_invalid(row, invalid_name, elements)
                continue
            strays = []
            for position, element in enumerate(elements):
                if type(element) is dict:
                    for k, key_values in enumerate(key_columns):
                        child_keys[k].append(key_values[row])
                    child_keys[-1].append(position)
                    child_objs.append(element)
                else:
                    strays.append(element)
            if strays:
                notes.add_invalid(row, invalid_name, strays)
        tables.update(flatten_table(child, child_keys, child_objs))

    arrays.append(_json_column(notes.extra))
    arrays.append(_json_column(notes.invalid))
    return {spec.name: pa.Table.from_arrays(arrays, schema=spec.schema), **tables}
