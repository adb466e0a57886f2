"""Parallel partition flattening publishes all of its files, or none of them."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from serp_etl.core.parquet import PartitionWriter, schema_tag
from serp_etl.core.partition_flatten import flatten_partition

SCHEMA = pa.schema([pa.field("n", pa.int64())])


def double(batch: pa.RecordBatch) -> Iterator[dict[str, pa.Table]]:
    """Each row doubled, in a piece of its own (as a large response's items come)."""
    for value in batch.column("n").to_pylist():
        if value == 13:
            raise ValueError("unlucky row")
        yield {"doubled": pa.table({"n": [2 * value]}, schema=SCHEMA)}


def write_source(path, groups):
    """The part written (its name tagged with its schema)."""
    with PartitionWriter({"s": path}, {"s": SCHEMA}, row_group_bytes=0) as writer:
        for group in groups:
            writer.write({"s": pa.table({"n": group}, schema=SCHEMA)})
    (published,) = writer.staged.values()
    return published


def test_two_workers_write_the_same_rows_as_one(tmp_path):
    source = write_source(tmp_path / "raw.parquet", [[1, 2], [3, 4], [5]])
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    assert flatten_partition(
        {source: None}, ["n"], double, out, {"doubled": SCHEMA}, workers=2
    ) == {"doubled": 5}
    parts = sorted((tmp_path / "doubled").iterdir())
    tag = schema_tag(SCHEMA)
    assert [p.name for p in parts] == [f"{tag}-part-0.parquet", f"{tag}-part-1.parquet"]
    rows = sorted(pa.concat_tables(pa.parquet.read_table(p) for p in parts)["n"].to_pylist())
    assert rows == [2, 4, 6, 8, 10]


def test_a_failing_worker_publishes_nothing_and_leaves_no_temp_files(tmp_path):
    source = write_source(tmp_path / "raw.parquet", [[1, 2], [13], [5]])
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    with pytest.raises(ValueError, match="unlucky row"):
        flatten_partition({source: None}, ["n"], double, out, {"doubled": SCHEMA}, workers=2)
    assert list((tmp_path / "doubled").iterdir()) == []


def test_no_raw_part_gives_empty_tables(tmp_path):
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    assert flatten_partition({}, ["n"], double, out, {"doubled": SCHEMA}, workers=2) == {
        "doubled": 0
    }
    assert pa.parquet.read_table(tmp_path / "doubled").schema == SCHEMA


def test_only_the_kept_rows_of_each_part_are_flattened(tmp_path):
    first = write_source(tmp_path / "a.parquet", [[1, 2], [3, 4]])  # rows 0-1, 2-3: 2 groups
    second = write_source(tmp_path / "b.parquet", [[5, 6]])
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    keep = {first: [1, 2], second: None}  # superseded: rows 0 and 3 of the first part
    assert flatten_partition(keep, ["n"], double, out, {"doubled": SCHEMA}, workers=2) == {
        "doubled": 4
    }
    rows = pa.parquet.read_table(tmp_path / "doubled")["n"].to_pylist()
    assert sorted(rows) == [4, 6, 10, 12]
