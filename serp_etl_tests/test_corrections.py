"""Corrections are kept, not dropped: a task re-parsed by the provider, or imported again with
other content, is a new version; the tables show the latest; identical content adds nothing."""

from __future__ import annotations

import orjson
import pyarrow.parquet as pq

from serp_etl import catalog
from serp_etl.cli import main
from serp_etl.core.raw import RAW_TABLE
from serp_etl.providers.dataforseo import pipeline
from serp_etl.providers.dataforseo.pipeline import PROVIDER
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl_tests.conftest import EXAMPLE_TARGETS, FIXTURES, TODAY, collect_today

DAY = TODAY


def raw_versions(warehouse) -> list[dict]:
    table = pq.read_table(
        warehouse.partition_dir(PROVIDER, RAW_TABLE, DAY),
        columns=["task_id", "content_hash", "source"],
    )
    return table.sort_by("task_id").to_pylist()


def test_a_task_the_provider_fixed_is_fetched_again_as_a_new_version(
    client, ledger, sandbox, clock, warehouse
):
    targets = load_targets(EXAMPLE_TARGETS)
    pipeline.submit(client, ledger, DAY, targets)
    clock.now += 60
    collect_today(client, ledger, clock)
    TABLES.publish_responses(ledger, warehouse, DAY)
    fixed = next(t.task_id for t in ledger.tasks(PROVIDER, DAY) if t.state.value == "fetched")
    sandbox.fix_task(fixed)
    assert [t.task_id for t in client.tasks_fixed()] == [fixed]

    report = collect_today(client, ledger, clock)
    assert report.corrected == 1
    TABLES.publish_responses(ledger, warehouse, DAY)
    versions = [v for v in raw_versions(warehouse) if v["task_id"] == fixed]
    assert sorted(v["source"] for v in versions) == ["api", "tasks_fixed"]
    TABLES.publish_flattened(warehouse, DAY)
    with catalog.connect(warehouse.data_dir) as con:
        keyword = con.execute(
            "SELECT keyword FROM dataforseo_serps WHERE task_id = ?", [fixed]
        ).fetchone()
    latest = orjson.loads(client.task_get(fixed).body)["tasks"][0]["result"][0]["keyword"]
    assert keyword == (latest,)

    again = collect_today(client, ledger, clock)  # still listed: fetched again, nothing new
    assert again.corrected == 0
    assert TABLES.publish_responses(ledger, warehouse, DAY).added == 0


def test_importing_changed_content_for_a_known_task_keeps_it(tmp_path, capsys):
    data = tmp_path / "data"
    reference = FIXTURES / "dataforseo_reference_example.json"
    changed = tmp_path / "changed.json"
    changed.write_bytes(
        reference.read_bytes().replace(b'"title": "ART.COM', b'"title": "Fixed: ART.COM')
    )
    args = ["--data-dir", str(data), "import", "dataforseo"]
    assert main([*args, str(reference), "--date", DAY]) == 0
    assert main([*args, str(changed), "--date", DAY]) == 0
    assert "1 new response in" in capsys.readouterr().out.split("file imported")[-2]
    assert main([*args, str(changed), "--date", DAY]) == 0
    assert "0 new responses in" in capsys.readouterr().out
    query = (
        "SELECT count(*) FILTER (WHERE title LIKE 'Fixed: %') AS fixed, count(*) AS n "
        "FROM dataforseo_organic"
    )
    main(["--data-dir", str(data), "sql", query, "--format", "json"])
    assert orjson.loads(capsys.readouterr().out) == [{"fixed": 1, "n": 4}]
    main(
        [
            "--data-dir",
            str(data),
            "sql",
            "SELECT count(*) AS v FROM dataforseo_responses",
            "--format",
            "json",
        ]
    )
    assert orjson.loads(capsys.readouterr().out) == [{"v": 2}]  # both versions are kept
