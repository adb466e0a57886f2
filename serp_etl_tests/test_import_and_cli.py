"""serp-etl import, sql and sandbox commands, as a user runs them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest

from serp_etl.cli import main
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo.archive import import_archives
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import FIXTURES, REFERENCE_TASK_ID

DAY = "2026-03-01"
REFERENCE = FIXTURES / "dataforseo_reference_example.json"


def _envelope_with(task_ids: list[str]) -> dict:
    template = orjson.loads(REFERENCE.read_bytes())
    task = template["tasks"][0]
    template["tasks"] = [
        {**task, "id": task_id, "data": {**task["data"], "tag": task_id[-4:]}}
        for task_id in task_ids
    ]
    return template


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "archive"
    folder.mkdir()
    ids = [f"00000000-0000-0066-0000-00000000000{i}" for i in range(4)]
    files = {
        "reference": REFERENCE,
        "gzip": folder / "two.json.gz",
        "ndjson": folder / "lines.ndjson",
        "truncated": folder / "truncated.json",
        "empty": folder / "empty.json",
        "not_json": folder / "page.html",
        "wrong_shape": folder / "shape.json",
        "error_envelope": folder / "denied.json",
        "hostile_id": folder / "hostile.json",
        "bad_gzip": folder / "broken.json.gz",
    }
    files["gzip"].write_bytes(gzip.compress(orjson.dumps(_envelope_with(ids[:2]))))
    files["ndjson"].write_bytes(b"\n".join(orjson.dumps(_envelope_with([i])) for i in ids[2:]))
    files["truncated"].write_bytes(REFERENCE.read_bytes()[:500])
    files["empty"].write_bytes(b"")
    files["not_json"].write_bytes(b"<html>502 Bad Gateway</html>")
    files["wrong_shape"].write_bytes(b'{"results": []}')
    files["error_envelope"].write_bytes(
        b'{"status_code": 40100, "status_message": "Denied.", "tasks": []}'
    )
    files["hostile_id"].write_bytes(orjson.dumps(_envelope_with(["../../etc/passwd"])))
    files["bad_gzip"].write_bytes(gzip.compress(b'{"tasks": []}')[:12])
    return files


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "not valid JSON"),
        ("empty", "empty file"),
        ("not_json", "not valid JSON"),
        ("wrong_shape", "not a task_get response"),
        ("error_envelope", "status 40100"),
        ("hostile_id", "not a DataForSEO task id"),
        ("bad_gzip", "corrupt or truncated gzip"),
    ],
)
def test_each_invalid_archive_is_named_with_its_reason(archives, name, reason, tmp_path):
    data = tmp_path / "data"
    with Ledger(ledger_path(data)) as ledger:
        report = import_archives([archives[name]], DAY, ledger, Warehouse(data))
    (error,) = report.rejected
    assert reason in error.reason and str(archives[name]) in str(error)
    assert report.new_responses == 0


def test_import_lands_the_good_files_rejects_the_bad_and_is_idempotent(tmp_path, archives, capsys):
    data = tmp_path / "data"
    good = [archives["reference"], archives["gzip"], archives["ndjson"]]
    bad = [archives["truncated"], archives["empty"], archives["wrong_shape"]]
    code, out, err = run(
        capsys, "--data-dir", data, "import", "dataforseo", *good, *bad, "--date", DAY
    )
    assert code == 1
    for path in bad:
        assert f"rejected {path}:" in err
    assert "3 files imported, 3 rejected; 5 new responses" in out

    query = (
        "SELECT count(*) AS n, count(DISTINCT task_id) AS ids FROM dataforseo_responses "
        f"WHERE date = DATE '{DAY}'"
    )
    assert json.loads(run(capsys, "--data-dir", data, "sql", query, "--format", "json")[1]) == [
        {"n": 5, "ids": 5}
    ]
    organic = "SELECT count(*) AS n FROM dataforseo_organic"
    assert json.loads(run(capsys, "--data-dir", data, "sql", organic, "--format", "json")[1]) == [
        {"n": 20}
    ]  # 4 organic items in each of the 5 responses

    code, out, _ = run(capsys, "--data-dir", data, "import", "dataforseo", *good, "--date", DAY)
    assert code == 0 and "0 new responses" in out
    assert json.loads(run(capsys, "--data-dir", data, "sql", organic, "--format", "json")[1]) == [
        {"n": 20}
    ]


def test_sql_formats(tmp_path, capsys):
    data = tmp_path / "data"
    run(capsys, "--data-dir", data, "import", "dataforseo", REFERENCE, "--date", DAY)
    query = "SELECT task_id, date, item_types, items_count FROM dataforseo_serps"
    code, out, _ = run(capsys, "--data-dir", data, "sql", query, "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {
            "task_id": REFERENCE_TASK_ID,
            "date": DAY,
            "item_types": ["images", "organic"],
            "items_count": 61,
        }
    ]
    code, out, _ = run(capsys, "--data-dir", data, "sql", query, "--format", "csv")
    assert out.splitlines()[0] == "task_id,date,item_types,items_count"
    code, out, _ = run(capsys, "--data-dir", data, "sql", query)
    assert REFERENCE_TASK_ID in out and "items_count" in out
    code, _, err = run(capsys, "--data-dir", data, "sql", "SELECT * FROM no_such_table")
    assert code == 2 and "no_such_table" in err


@pytest.mark.parametrize(
    "date",
    [
        "../../etc",
        "2025-13-01",
        "2025-02-30",
        "2025-00-10",
        "2025-1-01",
        " 2025-01-01",
        "2025-01-01\n",
    ],
)
def test_a_bad_date_is_refused_before_anything_runs(tmp_path, capsys, date):
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path), "import", "dataforseo", str(REFERENCE), "--date", date])
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "warehouse").exists()


def test_sandbox_stats_as_json(tmp_path, capsys):
    code, out, _ = run(capsys, "--data-dir", tmp_path, "sandbox", "stats", "--format", "json")
    stats = json.loads(out)
    assert code == 0 and stats["dataforseo"]["billed_tasks"] == 0
    assert stats["dataforseo"]["balance_usd"] == 50.0
    assert stats["semscraper"]["billed_scrapes"] == 0
    assert stats["semscraper"]["balance_eur"] == 100.50
