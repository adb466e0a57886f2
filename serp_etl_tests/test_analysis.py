"""The ready-made views (serp_etl.analysis) on three days of both sandboxes, against what the
raw responses say, read here in plain Python: the SQL and the flatten are not trusted."""

from __future__ import annotations

import shutil
from collections import defaultdict
from urllib.parse import urlsplit

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest

from serp_etl import analysis, catalog
from serp_etl.core import views
from serp_etl.core.warehouse import Warehouse
from serp_etl.state.ledger import PENDING_STATES, Ledger, TaskState, ledger_path
from serp_etl_tests import sandbox_days
from serp_etl_tests.conftest import imported

KEY = ("provider", "target", "location", "language", "device")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    return sandbox_days.build(tmp_path_factory.mktemp("analysis") / "data", drift=True)


def query(warehouse: Warehouse, sql: str, params=()) -> list[dict]:
    with catalog.connect(warehouse.data_dir) as connection:
        cursor = connection.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def host(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def raw_serps(warehouse: Warehouse) -> list[dict]:
    """Every SERP of the raw responses, as plain dicts: its key, day, id and items."""
    serps = []
    for provider in ("dataforseo", "semscraper"):
        for part in sorted((warehouse.root / provider / "responses").rglob("*.parquet")):
            day = part.parent.name.removeprefix("date=")
            table = pq.read_table(part, columns=["task_id", "body"])
            for task_id, body in zip(*table.to_pydict().values(), strict=True):
                document = orjson.loads(body)
                if provider == "dataforseo":
                    result = document["tasks"][0].get("result")
                    if not result:  # an empty SERP (40102): no SERP row
                        continue
                    serp = result[0]
                    key = (
                        provider,
                        serp["image_url"],
                        str(serp["location_code"]),
                        serp["language_code"],
                        "desktop",
                    )
                    items = [
                        {
                            "item_type": i["type"],
                            "rank_group": i["rank_group"],
                            "rank_absolute": i["rank_absolute"],
                            "domain": host(i.get("url")) or i.get("domain") or None,
                            "url": i.get("url"),
                            "title": i.get("title"),
                            "description": i.get("description"),
                        }
                        for i in serp["items"] or []
                    ]
                else:
                    key = (
                        provider,
                        document["keyword"],
                        document["location"],
                        document["language"],
                        document["device"],
                    )
                    flat = [
                        (block["type"], item)
                        for block in document["results"]
                        for item in block["items"]
                    ]
                    per_type: dict[str, int] = defaultdict(int)
                    items = []
                    for kind, item in sorted(flat, key=lambda pair: pair[1]["rank_serp"]):
                        per_type[kind] += 1
                        items.append(
                            {
                                "item_type": kind,
                                "rank_group": per_type[kind],
                                "rank_absolute": item["rank_serp"],
                                "domain": host(item["url"]) or item["domain"] or None,
                                "url": item["url"],
                                "title": item["title"] or None,
                                "description": item["description"] or None,
                            }
                        )
                serps.append({"key": key, "date": day, "id": task_id, "items": items})
    return serps


def as_rows(rows: list[dict], columns: tuple[str, ...]) -> list[tuple]:
    return sorted(
        (tuple(str(row[c]) if c == "date" else row[c] for c in columns) for row in rows), key=repr
    )


def test_serp_items_holds_every_item_of_both_providers_mapped(warehouse):
    serps = raw_serps(warehouse)
    columns = (
        "date",
        "item_type",
        "rank_group",
        "rank_absolute",
        "domain",
        "url",
        "title",
        "description",
    )
    expected = [
        (*serp["key"], serp["id"], *(item[c] if c != "date" else serp["date"] for c in columns))
        for serp in serps
        for item in serp["items"]
    ]
    got = query(warehouse, "SELECT * FROM serp_items")
    assert as_rows(got, (*KEY, "serp_id", *columns)) == sorted(expected, key=repr)
    kinds = {row["item_type"] for row in got}
    assert {"organic", "images", "related_searches", "people_also_ask"} <= kinds
    # Each provider is there, and a second results page's organic block keeps counting.
    assert {row["provider"] for row in got} == {"dataforseo", "semscraper"}
    deep = [
        r["rank_group"]
        for r in got
        if r["target"] == "tropical wallpaper"
        and r["item_type"] == "organic"
        and str(r["date"]) == sandbox_days.DAYS[0]
    ]
    assert sorted(deep) == list(range(1, len(deep) + 1)) and len(deep) > 10


def organic_best(serps: list[dict]) -> dict[tuple, dict]:
    best: dict[tuple, dict] = {}
    for serp in serps:
        for item in serp["items"]:
            if item["item_type"] != "organic" or item["domain"] is None:
                continue
            key = (serp["key"], item["domain"], serp["date"])
            seen = best.get(key)
            if seen is None or item["rank_group"] < seen["rank"]:
                best[key] = {
                    "rank": item["rank_group"],
                    "url": item["url"],
                    "rank_absolute": min(
                        item["rank_absolute"], seen["rank_absolute"] if seen else 10**9
                    ),
                }
            else:
                seen["rank_absolute"] = min(seen["rank_absolute"], item["rank_absolute"])
    return best


def previous_days(serps: list[dict]) -> dict[tuple, str | None]:
    days = defaultdict(set)
    for serp in serps:
        days[serp["key"]].add(serp["date"])
    return {
        (key, day): max((d for d in dates if d < day), default=None)
        for key, dates in days.items()
        for day in dates
    }


def test_rank_history_is_the_best_rank_and_its_change_since_the_previous_collected_day(warehouse):
    serps = raw_serps(warehouse)
    best, previous = organic_best(serps), previous_days(serps)
    expected = []
    for (key, domain, day), found in best.items():
        before = previous[key, day]
        earlier = best.get((key, domain, before))
        expected.append(
            (
                *key,
                domain,
                day,
                found["rank"],
                found["rank_absolute"],
                found["url"],
                before,
                earlier and earlier["rank"],
                earlier and earlier["rank"] - found["rank"],
                None if before is None else earlier is None,
            )
        )
    got = query(warehouse, "SELECT * FROM rank_history")
    got = [
        {**row, "previous_date": row["previous_date"] and str(row["previous_date"])} for row in got
    ]
    assert as_rows(
        got,
        (
            *KEY,
            "domain",
            "date",
            "rank",
            "rank_absolute",
            "url",
            "previous_date",
            "previous_rank",
            "rank_change",
            "is_new",
        ),
    ) == sorted(expected, key=repr)
    # The sandbox's history moves: some domains climb, some drop, some are new.
    changes = [row["rank_change"] for row in got if row["rank_change"] is not None]
    assert min(changes) < 0 < max(changes)
    assert any(row["is_new"] for row in got)


def test_image_hosts_names_the_pages_showing_each_image_and_what_is_new(warehouse):
    serps = [s for s in raw_serps(warehouse) if s["key"][0] == "dataforseo"]
    previous = previous_days(serps)
    pages: dict[tuple, int] = {}
    for serp in serps:
        for item in serp["items"]:
            if item["item_type"] == "organic" and item["url"]:
                at = (serp["key"], serp["date"], item["domain"], item["url"])
                pages[at] = min(pages.get(at, 10**9), item["rank_group"])
    expected = []
    for (key, day, domain, url), rank in pages.items():
        before = previous[key, day]
        then = [(d, u) for (k, on, d, u) in pages if k == key and on == before]
        expected.append(
            (
                key[1],
                key[2],
                key[3],
                day,
                domain,
                url,
                rank,
                before,
                None if before is None else url not in {u for _, u in then},
                None if before is None else domain not in {d for d, _ in then},
            )
        )
    got = query(warehouse, "SELECT * FROM image_hosts")
    got = [
        {**row, "previous_date": row["previous_date"] and str(row["previous_date"])} for row in got
    ]
    assert as_rows(
        got,
        (
            "image_url",
            "location",
            "language",
            "date",
            "domain",
            "url",
            "rank",
            "previous_date",
            "is_new_page",
            "is_new_domain",
        ),
    ) == sorted(expected, key=repr)
    assert {row["is_new_domain"] for row in got} == {None, True, False}


def test_serp_features_counts_each_item_type_per_target_and_day(warehouse):
    counts: dict[tuple, list] = {}
    for serp in raw_serps(warehouse):
        for item in serp["items"]:
            at = (*serp["key"], serp["date"], item["item_type"])
            entry = counts.setdefault(at, [0, set(), 10**9])
            entry[0] += 1
            entry[1].add(serp["id"])
            entry[2] = min(entry[2], item["rank_absolute"])
    expected = [(*at, n, len(ids), first) for at, (n, ids, first) in counts.items()]
    got = query(warehouse, "SELECT * FROM serp_features")
    assert as_rows(
        got, (*KEY, "date", "item_type", "items", "serps", "first_rank_absolute")
    ) == sorted(expected, key=repr)


def test_domain_visibility_is_each_domains_share_of_the_top_ten(warehouse):
    top = [
        (serp["key"][0], serp["date"], serp["id"], item["domain"], item["rank_group"])
        for serp in raw_serps(warehouse)
        for item in serp["items"]
        if item["item_type"] == "organic" and item["rank_group"] <= 10
    ]
    totals = defaultdict(list)
    for provider, day, serp_id, _, _ in top:
        totals[provider, day].append(serp_id)
    expected = {}
    for provider, day, serp_id, domain, rank in top:
        if domain is not None:
            expected.setdefault((provider, day, domain), []).append((serp_id, rank))
    got = query(warehouse, "SELECT * FROM domain_visibility")
    assert len(got) == len(expected)
    for row in got:
        held = expected[row["provider"], str(row["date"]), row["domain"]]
        positions = totals[row["provider"], str(row["date"])]
        assert row["top10_positions"] == len(held)
        assert row["all_top10_positions"] == len(positions)
        assert row["share"] == pytest.approx(len(held) / len(positions))
        assert row["serps_present"] == len({s for s, _ in held})
        assert row["serps"] == len(set(positions))
        assert row["best_rank"] == min(r for _, r in held)
        assert row["average_rank"] == pytest.approx(sum(r for _, r in held) / len(held))
    for provider_day in totals:  # shares of a day add up to what named domains hold
        assert (
            sum(r["share"] for r in got if (r["provider"], str(r["date"])) == provider_day)
            <= 1 + 1e-9
        )


def test_spend_health_is_the_ledger_per_provider_and_day(warehouse):
    got = {
        (row["provider"], str(row["date"])): row
        for row in query(warehouse, "SELECT * FROM spend_health")
    }
    with Ledger(ledger_path(warehouse.data_dir)) as ledger:
        for provider in ("dataforseo", "semscraper"):
            for day in sandbox_days.DAYS:
                tasks = ledger.tasks(provider, day)
                row = got.pop((provider, day))
                assert row["tasks"] == len(tasks)
                assert row["cost"] == pytest.approx(sum(t.cost for t in tasks))
                assert row["pending"] == sum(t.state in PENDING_STATES for t in tasks)
                for state in set(TaskState) - PENDING_STATES:
                    assert row[str(state)] == sum(t.state is state for t in tasks)
    assert not got
    assert query(warehouse, "SELECT sum(empty) AS n FROM spend_health")[0]["n"] > 0


def test_a_day_of_the_day_views_reads_only_that_day(warehouse, tmp_path):
    # A copy whose middle day's parts are no Parquet at all: a query that opened one fails.
    # (Not the first day's: binding a view reads the first part of each generation.)
    data = tmp_path / "data"
    shutil.copytree(warehouse.data_dir, data)
    catalog.refresh_views(data)  # views of the copy's place (they bind on a first day's part)
    for part in Warehouse(data).root.rglob(f"date={sandbox_days.DAYS[1]}/*.parquet"):
        part.write_bytes(b"not parquet")
    day = sandbox_days.DAYS[2]
    with catalog.connect(data) as connection:
        for view in (
            "serp_searches",
            "serp_items",
            "serp_features",
            "domain_visibility",
            "spend_health",
        ):
            assert (
                connection.execute(f"SELECT count(*) FROM {view} WHERE date = ?", [day]).fetchone()[
                    0
                ]
                > 0
            ), view
        with pytest.raises(duckdb.Error):
            connection.execute("SELECT count(*) FROM serp_items").fetchone()


def test_the_views_are_in_the_views_file_described_for_bi_tools(warehouse):
    path = warehouse.data_dir / views.VIEWS_FILE
    with duckdb.connect(str(path), read_only=True) as client:
        comments = dict(
            client.execute(
                "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
        comments |= dict(
            client.execute(  # the views that take days: table macros
                "SELECT function_name, comment FROM duckdb_functions() WHERE function_type = "
                "'table_macro' AND NOT internal"
            ).fetchall()
        )
    for view in analysis.views(catalog.PROVIDERS):
        assert comments[view.name] == view.description


def test_every_table_view_and_column_is_described_for_bi_tools(warehouse):
    path = warehouse.data_dir / views.VIEWS_FILE
    with duckdb.connect(str(path), read_only=True) as client:
        comments = dict(
            client.execute(
                "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
        columns = client.execute(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE table_name "
            "IN (SELECT unnest(?))",
            [list(catalog.view_schemas())],
        ).fetchall()
    for view in catalog.view_schemas():
        provider, table = view.split("_", 1)
        assert comments[view] == catalog.PROVIDERS[provider].description(table)
    assert len(columns) > 300 and [c for c in columns if not c[2]] == []
    dates = {comment for _, name, comment in columns if name == "date"}
    assert len(dates) == 1 and next(iter(dates)).startswith("The day of the partition")


def test_the_views_answer_before_a_provider_has_any_data(tmp_path):
    data = tmp_path / "data"
    imported(data, "2026-03-01")  # DataForSEO only: no SemScraper table exists
    with catalog.connect(data) as connection:
        assert connection.execute("SELECT count(*) FROM semscraper_items").fetchone() == (0,)
        providers = connection.execute(
            "SELECT provider, count(*) FROM serp_items GROUP BY ALL"
        ).fetchall()
        assert providers == [("dataforseo", 5)]
        # The imported day: its responses' tasks and cost (no ledger, no states).
        assert connection.execute("SELECT provider, counted_from FROM spend_health").fetchall() == [
            ("dataforseo", "responses")
        ]
        # The empty views are typed as the tables will be.
        kinds = dict(
            connection.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = 'semscraper_serps'"
            ).fetchall()
        )
        assert kinds["scraped_at"] == "TIMESTAMP WITH TIME ZONE"
        assert kinds["date"] == "DATE"


def test_the_views_name_the_urls_host_not_a_shopping_results_price_label(tmp_path):
    """DataForSEO's own example: two organic items whose ``domain`` is a shop's price label."""

    data = tmp_path / "data"
    day = "2026-04-01"
    imported(data, day)
    warehouse = Warehouse(data)
    ranks = {
        row["domain"]: row["rank"]
        for row in query(
            warehouse, "SELECT domain, rank FROM rank_history WHERE provider = 'dataforseo'"
        )
    }
    assert ranks["www.amazon.com"] == 1 and ranks["www.redbubble.com"] == 3
    shares = {row["domain"] for row in query(warehouse, "SELECT domain FROM domain_visibility")}
    assert "www.amazon.com" in shares
    labels = [d for d in [*ranks, *shares] if "•" in d or "$" in d]
    assert not labels


def test_the_sandbox_sends_price_labels_and_empty_domains_as_the_apis_do(warehouse):
    labels = query(warehouse, "SELECT domain, url FROM dataforseo_organic WHERE domain LIKE '%•%'")
    empty = query(warehouse, "SELECT url FROM semscraper_items WHERE domain = ''")
    assert labels and empty
    named = {
        row["url"]: row["domain"]
        for row in query(warehouse, "SELECT url, domain FROM serp_items WHERE url IS NOT NULL")
    }
    for row in [*labels, *empty]:
        assert named[row["url"]] == host(row["url"])


def test_spend_health_shows_an_imported_days_tasks_and_cost(tmp_path):
    from serp_etl.cli import main
    from serp_etl.sandbox.dataforseo.app import advanced_task, envelope

    day, saved = "2026-04-01", tmp_path / "saved.ndjson"
    saved.write_bytes(
        b"".join(
            orjson.dumps(
                envelope(
                    [
                        advanced_task(
                            f"00000000-0000-0066-0000-00000000000{n}",
                            {
                                "image_url": f"https://images.example.com/{n}.jpg",
                                "location_code": 2840,
                                "language_code": "en",
                            },
                            day,
                            0.0006,
                        )
                    ]
                )
            )
            + b"\n"
            for n in range(3)
        )
    )
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "import", "dataforseo", str(saved), "--date", day]) == 0
    (row,) = query(Warehouse(data), "SELECT * FROM spend_health")
    assert (row["provider"], str(row["date"]), row["tasks"]) == ("dataforseo", day, 3)
    assert row["cost"] == pytest.approx(0.0018) and row["currency"] == "USD"
    assert row["counted_from"] == "responses"
    assert row["fetched"] is None and row["pending"] is None  # the ledger never saw them


FLAT_VIEWS = {
    provider: [f"{provider}_{table}" for table in catalog.PROVIDERS[provider].flat_schemas]
    for provider in ("dataforseo", "semscraper")
}


def test_every_flattened_row_names_the_response_version_it_came_from(warehouse):
    latest = {}
    for provider in FLAT_VIEWS:
        for row in query(
            warehouse,
            "SELECT date, task_id, content_hash FROM "
            f"{provider}_responses QUALIFY row_number() OVER "
            "(PARTITION BY date, task_id "
            "ORDER BY fetched_at DESC, content_hash DESC) = 1",
        ):
            latest[provider, str(row["date"]), row["task_id"]] = row["content_hash"]
    checked = 0
    for provider, flat_views in FLAT_VIEWS.items():
        for view in flat_views:
            with catalog.connect(warehouse.data_dir) as connection:
                # A flattened table's first column is its task's id (task_id, or id).
                task_key = connection.execute(f"SELECT * FROM {view} LIMIT 0").description[0][0]
                rows = connection.execute(
                    f"SELECT CAST(date AS VARCHAR), {task_key}, content_hash FROM {view}"
                ).fetchall()
            for day, task_id, version in rows:
                assert version == latest[provider, day, task_id], (view, task_id)
                checked += 1
    assert checked > 500


def test_loads_lists_each_collection_and_import_with_its_counts(warehouse, tmp_path):
    loads = query(warehouse, "SELECT * FROM loads ORDER BY provider, date")
    assert [(load["provider"], load["kind"], load["sources"]) for load in loads] == [
        ("dataforseo", "collection", ["api"])
    ] * 3 + [("semscraper", "collection", ["api"])] * 3
    assert all(load["loaded_at"] is not None for load in loads)
    for load in loads:
        day = [str(load["date"])]
        provider = load["provider"]
        assert (
            load["responses"]
            == query(
                warehouse, f"SELECT count(*) AS n FROM {provider}_responses WHERE date = ?", day
            )[0]["n"]
        )
        assert (
            load["serp_rows"]
            == query(warehouse, f"SELECT count(*) AS n FROM {provider}_serps WHERE date = ?", day)[
                0
            ]["n"]
            > 0
        )
        items = query(
            warehouse,
            "SELECT count(*) AS n FROM serp_items WHERE provider = ? AND date = ?",
            [provider, *day],
        )[0]["n"]
        assert load["item_rows"] == items > 0
    data = tmp_path / "data"
    imported(data, "2026-03-01")
    imported(data, "2026-03-01")  # the same file again: no new version, so no new load
    with catalog.connect(data) as connection:
        (load,) = connection.execute(
            "SELECT kind, sources, responses, serp_rows, item_rows > 0 FROM loads"
        ).fetchall()
    assert load[0] == "import" and load[1][0].startswith("import:") and load[2:] == (1, 1, True)
