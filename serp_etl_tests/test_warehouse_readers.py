"""Reading the warehouse from your own code: a notebook's pandas API and a read-only
DuckDBResource for your own Dagster assets."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from serp_etl import catalog
from serp_etl.core.warehouse import Warehouse
from serp_etl.defs.resources import WarehouseDuckDBResource
from serp_etl.notebook import UnknownName, open_warehouse
from serp_etl_tests import sandbox_days
from serp_etl_tests.test_my_sites_views import DAYS


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    return sandbox_days.build(tmp_path_factory.mktemp("readers") / "data", days=DAYS[:2])


def test_a_notebook_reads_any_view_as_a_dataframe(warehouse):
    with open_warehouse(warehouse.data_dir) as serp:
        views = serp.views().set_index("name")
        assert views.loc["my_ranks", "kind"] == "view"
        assert views.loc["my_ranks_between", "kind"] == "table macro"
        assert views.loc["semscraper_items", "comment"].startswith("One row per item")
        ranks = serp.read(
            "my_ranks", target="papier peint tropical", domain="papierpeinttropical.fr"
        )
        assert ranks["rank"].tolist() == [10, 2]
        same = serp.sql(
            "SELECT count(*) AS n FROM my_ranks WHERE target = ?", ["papier peint tropical"]
        )
        assert same["n"].tolist() == [3 * len(DAYS[:2])]  # three domains of mine a day
        with pytest.raises(UnknownName, match="no view 'rank_histroy'.*rank_history"):
            serp.read("rank_histroy")
        with pytest.raises(UnknownName, match=r"my_ranks has no column colour.*rank_change"):
            serp.read("my_ranks", colour="red")
        # Read-only: a filter is a bound value, and nothing can be written.
        assert serp.read("my_ranks", target="x' OR '1'='1").empty
        with pytest.raises(duckdb.Error):
            serp.sql(f"COPY (SELECT 1) TO '{warehouse.data_dir}/out.csv'")
    assert not (warehouse.data_dir / "out.csv").exists()


def test_your_own_asset_reads_the_warehouse_through_a_read_only_duckdb_resource(warehouse):
    @dg.asset
    def top_domains(warehouse_duckdb: WarehouseDuckDBResource) -> dg.MaterializeResult:
        with warehouse_duckdb.get_connection() as connection:
            rows = connection.execute(
                "SELECT domain, count(*) FROM serp_items WHERE provider = 'semscraper' "
                "GROUP BY domain ORDER BY 2 DESC, 1 LIMIT 3"
            ).fetchall()
            with pytest.raises(duckdb.Error, match="read-only|attached in read-only"):
                connection.execute("CREATE TABLE mine AS SELECT 1")
        return dg.MaterializeResult(metadata={"top": dg.MetadataValue.json(rows)})

    resource = WarehouseDuckDBResource(database=str(warehouse.data_dir / "serp.duckdb"))
    result = dg.materialize([top_domains], resources={"warehouse_duckdb": resource})
    assert result.success
    (event,) = result.asset_materializations_for_node("top_domains")
    with catalog.connect(warehouse.data_dir) as connection:
        expected = connection.execute(
            "SELECT domain, count(*) FROM serp_items WHERE provider = 'semscraper' "
            "GROUP BY domain ORDER BY 2 DESC, 1 LIMIT 3"
        ).fetchall()
    assert event.metadata["top"].value == [list(row) for row in expected]
