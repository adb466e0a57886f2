"""serp-etl import semscraper: saved retrieve-by-ids responses, with the same rules."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest

from serp_etl.cli import main
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.semscraper.archive import import_archives
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.test_semscraper_flatten import RETRIEVED

DAY = "2026-04-01"


def serp(serp_id: str, **fields) -> dict:
    return {**RETRIEVED["data"][0], "id": serp_id, **fields}


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    paths = {
        "retrieved": folder / "retrieved.json",
        "gzip": folder / "more.json.gz",
        "callbacks": folder / "callbacks.ndjson",
        "truncated": folder / "truncated.json",
        "error": folder / "error.json",
        "hostile": folder / "hostile.json",
        "no_results": folder / "no_results.json",
        "pending_only": folder / "pending.json",
    }
    paths["retrieved"].write_bytes(orjson.dumps(RETRIEVED))
    paths["gzip"].write_bytes(
        gzip.compress(
            orjson.dumps(
                {**RETRIEVED, "data": [serp("S2"), serp("S3", status="pending", results=None)]}
            )
        )
    )
    paths["callbacks"].write_bytes(orjson.dumps(serp("S4")) + b"\n" + orjson.dumps(serp("S5")))
    paths["truncated"].write_bytes(orjson.dumps(RETRIEVED)[:300])
    paths["error"].write_bytes(
        b'{"error": "Bad Request", "message": "ids: too many",'
        b' "code": 400, "status": "error", "data": []}'
    )
    paths["hostile"].write_bytes(orjson.dumps(serp("a,b")))
    paths["no_results"].write_bytes(orjson.dumps(serp("S6", results=None)))
    paths["pending_only"].write_bytes(orjson.dumps(serp("S7", status="pending")))
    return paths


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated", "not valid JSON"),
        ("error", "ids: too many"),
        ("hostile", "not a SemScraper id"),
        ("no_results", "needs a 'results' array"),
        ("pending_only", "holds no done SERP"),
    ],
)
def test_each_invalid_file_is_named_with_its_reason(files, name, reason, tmp_path):
    data = tmp_path / "data"
    with Ledger(ledger_path(data)) as ledger:
        report = import_archives([files[name]], DAY, ledger, Warehouse(data))
    (error,) = report.rejected
    assert reason in error.reason and report.new_responses == 0


def test_import_lands_good_files_and_is_idempotent(tmp_path, files, capsys):
    data = tmp_path / "data"
    good = [files["retrieved"], files["gzip"], files["callbacks"]]
    code = main(
        [
            "--data-dir",
            str(data),
            "import",
            "semscraper",
            *map(str, good),
            str(files["truncated"]),
            "--date",
            DAY,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1 and f"rejected {files['truncated']}" in err
    assert "3 files imported, 1 rejected; 4 new responses" in out

    query = "SELECT count(*) AS serps, sum(depth) AS depth FROM semscraper_serps"
    main(["--data-dir", str(data), "sql", query, "--format", "json"])
    assert json.loads(capsys.readouterr().out) == [{"serps": 4, "depth": 4}]

    assert (
        main(["--data-dir", str(data), "import", "semscraper", *map(str, good), "--date", DAY]) == 0
    )
    assert "0 new responses" in capsys.readouterr().out
