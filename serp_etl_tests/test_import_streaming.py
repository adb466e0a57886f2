"""Backfill at scale: files split over workers by byte range, progress on a terminal, imports
that add to a day without rewriting it."""

from __future__ import annotations

import io
import json
import os

import orjson
import pyarrow.parquet as pq
import pytest

from serp_etl.core import archive
from serp_etl.core.raw import RAW_TABLE
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.archive import import_archives
from serp_etl.state.ledger import Ledger
from serp_etl_tests.conftest import FIXTURES, TODAY

REFERENCE = orjson.dumps(
    orjson.loads((FIXTURES / "dataforseo_reference_example.json").read_bytes())
)


def response(n: int) -> bytes:
    return REFERENCE.replace(
        b"11151921-1535-0066-0000-2c32bed229f2", f"11151921-1535-0066-0000-{n:012x}".encode()
    )


def dirty_file(path):
    """Good lines, a document broken over two lines by a raw newline, an invalid line, a
    line over a 1 MB cap and blank lines: what each line is, by its number."""
    broken = response(3).replace(b'"keyword":', b'"keyword":"a\nb","k":', 1)
    lines = [
        response(1),
        b"",
        response(2),
        broken,
        b"<html>oops</html>",
        b'{"pad": "' + b"x" * (2**20 + 10) + b'"}',
        response(4),
        b"  ",
        response(5),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def land(tmp_path, name, paths, **options):
    data = tmp_path / name
    with Ledger(data / "ledger.sqlite") as ledger:
        report = import_archives(
            paths, TODAY, ledger, Warehouse(data), keep_good=True, max_document_mb=1, **options
        )
    raw = pq.read_table(
        Warehouse(data).root / "dataforseo" / RAW_TABLE,
        columns=["task_id", "content_hash", "body", "repairs"],
    )
    rejects = [json.loads(line) for line in report.rejects_file.read_text().splitlines()]
    return report, sorted(raw.to_pylist(), key=lambda row: row["task_id"]), rejects


def test_workers_reading_byte_ranges_land_what_one_reader_lands(tmp_path, monkeypatch):
    path = dirty_file(tmp_path / "dirty.ndjson")
    one = land(tmp_path, "one", [path], workers=1)
    # Ranges of a few bytes: every line is a range of its own, read by whichever worker is
    # free; the broken document's two lines are in two ranges.
    monkeypatch.setattr(archive, "MIN_RANGE_BYTES", 1)
    monkeypatch.setattr(archive, "MAX_RANGE_BYTES", 1)
    ranges = archive.line_ranges(path, 2**20 * 2, 2)
    assert len(ranges) == 10  # one a line, blank ones included
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    many = land(tmp_path, "many", [path], workers=2)
    report, raw, rejects = many
    assert report.new_responses == 5 and raw == one[1]
    assert [(r["line"], r["reason"][:20]) for r in rejects] == [
        (r["line"], r["reason"][:20]) for r in one[2]
    ]
    assert [r["line"] for r in rejects] == [6, 7]
    assert "not valid JSON" in rejects[0]["reason"]
    assert "over the size cap (1 MB)" in rejects[1]["reason"]
    joined = [row for row in raw if row["repairs"]]
    assert len(joined) == 1 and "control_character" in joined[0]["repairs"]


def test_a_worker_that_dies_fails_the_import_and_publishes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "good.ndjson"
    path.write_bytes(b"\n".join(response(n) for n in range(1, 5)) + b"\n")
    monkeypatch.setattr(archive, "_work", lambda *args: os._exit(9))  # as if killed
    data = tmp_path / "data"
    with Ledger(data / "ledger.sqlite") as ledger, pytest.raises(RuntimeError, match="exit code 9"):
        import_archives([path], TODAY, ledger, Warehouse(data), workers=2)
    assert not list((data / "warehouse").rglob("*.parquet"))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream", [Terminal(), io.StringIO()])
def test_a_progress_line_per_file_on_a_terminal_only(tmp_path, stream):
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"day-{k}.ndjson")
        paths[-1].write_bytes(b"\n".join(response(10 * k + n) for n in range(3)) + b"\n")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        import_archives(paths, TODAY, ledger, Warehouse(tmp_path / "data"), progress=stream)
    shown = stream.getvalue()
    if not stream.isatty():
        assert shown == ""
        return
    finals = [line.rsplit("\r", 1)[-1] for line in shown.split("\n")[:-1]]
    assert [line.split(":")[0] for line in finals] == ["day-0.ndjson", "day-1.ndjson"]
    assert all(" 3 documents, " in line and line.endswith(" items/s") for line in finals)


def test_each_import_adds_parts_and_rewrites_none(tmp_path):
    data = tmp_path / "data"
    warehouse = Warehouse(data)
    stamps = {}
    for k in range(3):
        path = tmp_path / f"batch-{k}.ndjson"
        path.write_bytes(b"\n".join(response(10 * k + n) for n in range(4)) + b"\n")
        with Ledger(data / "ledger.sqlite") as ledger:
            report = import_archives([path], TODAY, ledger, warehouse)
        assert report.new_responses == 4
        parts = sorted(warehouse.root.rglob("*.parquet"))
        for part, stamp in stamps.items():
            assert (part.stat().st_ino, part.stat().st_mtime_ns) == stamp  # untouched
        stamps = {part: (part.stat().st_ino, part.stat().st_mtime_ns) for part in parts}
    raw = pq.read_table(warehouse.root / "dataforseo" / RAW_TABLE, columns=["task_id"])
    assert raw.num_rows == 12


def garble_in_place(part) -> None:
    """The part's bytes replaced by as many others, its modification time kept: whoever opens
    it now fails; the part index still knows it."""
    stat = part.stat()
    part.write_bytes(b"x" * stat.st_size)
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_import_into_a_day_opens_none_of_the_parts_already_there(tmp_path):
    data = tmp_path / "data"
    warehouse = Warehouse(data)
    first = tmp_path / "first.ndjson"
    first.write_bytes(b"\n".join(response(n) for n in range(3)) + b"\n")
    with Ledger(data / "ledger.sqlite") as ledger:
        before = import_archives([first], TODAY, ledger, warehouse).rows
        earlier = sorted(warehouse.root.rglob("*.parquet"))
        for part in earlier:
            garble_in_place(part)
        second = tmp_path / "second.ndjson"
        second.write_bytes(b"\n".join(response(n) for n in range(2, 6)) + b"\n")
        report = import_archives([second], TODAY, ledger, warehouse)
    assert report.new_responses == 3  # response 2 was there already: known without reading
    assert report.rows[RAW_TABLE] == before[RAW_TABLE] + 3
    assert report.rows["organic"] == before["organic"] * 2  # 3 SERPs, then 3 more
