"""Parallel partition flattening publishes all of its files, or none of them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from serp_etl.core.parquet import PartitionWriter
from serp_etl.core.partition_flatten import flatten_partition

SCHEMA = pa.schema([pa.field("n", pa.int64())])


def double(batch: pa.RecordBatch) -> dict[str, pa.Table]:
    values = batch.column("n").to_pylist()
    if 13 in values:
        raise ValueError("unlucky row")
    return {"doubled": pa.table({"n": [2 * v for v in values]}, schema=SCHEMA)}


def write_source(path, groups):
    with PartitionWriter({"s": path}, {"s": SCHEMA}, row_group_bytes=0) as writer:
        for group in groups:
            writer.write({"s": pa.table({"n": group}, schema=SCHEMA)})


def test_two_workers_write_the_same_rows_as_one(tmp_path):
    source = tmp_path / "raw.parquet"
    write_source(source, [[1, 2], [3, 4], [5]])
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    assert flatten_partition(source, ["n"], double, out, {"doubled": SCHEMA}, workers=2) == {
        "doubled": 5}
    parts = sorted((tmp_path / "doubled").iterdir())
    assert [p.name for p in parts] == ["part-0.parquet", "part-1.parquet"]
    rows = sorted(pa.concat_tables(pa.parquet.read_table(p) for p in parts)["n"].to_pylist())
    assert rows == [2, 4, 6, 8, 10]


def test_a_failing_worker_publishes_nothing_and_leaves_no_temp_files(tmp_path):
    source = tmp_path / "raw.parquet"
    write_source(source, [[1, 2], [13], [5]])
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    with pytest.raises(ValueError, match="unlucky row"):
        flatten_partition(source, ["n"], double, out, {"doubled": SCHEMA}, workers=2)
    assert list((tmp_path / "doubled").iterdir()) == []


def test_a_missing_raw_file_gives_empty_tables(tmp_path):
    out = {"doubled": tmp_path / "doubled" / "part-0.parquet"}
    assert flatten_partition(tmp_path / "none.parquet", ["n"], double, out,
                             {"doubled": SCHEMA}, workers=2) == {"doubled": 0}
    assert pa.parquet.read_table(out["doubled"]).schema == SCHEMA
