"""Several instances of one provider (components.serp_provider), side by side in one data dir
and one warehouse: each its own asset keys, ledger scope, tags, budget and targets."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from serp_etl import catalog
from serp_etl.components import SerpProviderComponent
from serp_etl.defs.resources import WarehouseResource
from serp_etl.providers.dataforseo import settings
from serp_etl.providers.instances import InstanceNameError
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests.conftest import TODAY, billed, project_copy, run_dg

IMAGES = [
    "https://upload.wikimedia.org/wikipedia/commons/a/a8/Tour_Eiffel_Wikimedia_Commons.jpg",
    "https://upload.wikimedia.org/wikipedia/commons/3/3f/Fronalpstock_big.jpg",
    "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png",
]
PRICE = settings.task_price(1, 1, False)


def targets_file(section: str, images: list[str]) -> str:
    return "".join(
        f'[[{section}]]\nimage_url = "{url}"\nlocation_code = 2840\nlanguage_code = "en"\n\n'
        for url in images
    )


def materialize(
    data_dir: Path, *components: SerpProviderComponent, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """Today of the ``components``' assets, each with its own resource, one warehouse."""
    built = [dg.build_defs_for_component(component) for component in components]
    assets = [a for defs in built for a in defs.assets or []]
    resources = {key: value for defs in built for key, value in (defs.resources or {}).items()}
    return dg.materialize(
        assets,
        partition_key=TODAY,
        resources={**resources, "warehouse": WarehouseResource(data_dir=str(data_dir))},
        raise_on_error=raise_on_error,
    )


@pytest.fixture
def two_instances(data_dir) -> tuple[SerpProviderComponent, SerpProviderComponent]:
    # The client's instance tracks the default one's first image too, and two others; its
    # budget holds its own three tasks, not its three and the default instance's two.
    (data_dir / "targets.toml").write_text(
        targets_file("dataforseo", IMAGES[:2]) + targets_file("dataforseo_client_b", IMAGES)
    )
    default = SerpProviderComponent(provider="dataforseo", collect_deadline_seconds=30)
    client_b = SerpProviderComponent(
        provider="dataforseo",
        name="dataforseo_client_b",
        budget=round(3 * PRICE, 8),
        collect_deadline_seconds=30,
    )
    return default, client_b


def test_two_instances_of_one_provider_run_side_by_side(data_dir, two_instances):
    default, client_b = two_instances
    result = materialize(data_dir, default, client_b)
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"dataforseo/organic", "dataforseo_client_b/organic"} <= keys
    with Ledger(ledger_path(data_dir)) as ledger:
        ours = ledger.tasks("dataforseo", TODAY)
        theirs = ledger.tasks("dataforseo_client_b", TODAY)
    assert len(ours) == 2 and len(theirs) == 3  # each its own scope
    assert all(t.tag.startswith(f"serp-etl/dataforseo/{TODAY}/") for t in ours)
    assert all(t.tag.startswith(f"serp-etl/dataforseo_client_b/{TODAY}/") for t in theirs)
    assert {t.task_id for t in ours}.isdisjoint(t.task_id for t in theirs)
    assert billed(data_dir)[0] == 5  # the shared image is each instance's own task
    with catalog.connect(data_dir) as connection:
        searched = dict(
            connection.execute("SELECT provider, count(*) FROM serp_searches GROUP BY 1").fetchall()
        )
        spend = dict(connection.execute("SELECT provider, tasks FROM spend_health").fetchall())
        organic = connection.execute("SELECT count(*) FROM dataforseo_client_b_organic").fetchone()
    assert searched == {"dataforseo": 2, "dataforseo_client_b": 3}
    assert spend["dataforseo"] == 2 and spend["dataforseo_client_b"] == 3
    assert organic[0] > 0
    # A second run of both posts nothing: each finds its own tasks.
    assert materialize(data_dir, default, client_b).success
    assert billed(data_dir)[0] == 5


def test_each_instance_keeps_to_its_own_budget(data_dir, two_instances):
    default, client_b = two_instances
    tight = client_b.model_copy(update={"budget": round(2 * PRICE, 8)})
    assert materialize(data_dir, default).success
    result = materialize(data_dir, tight, raise_on_error=False)
    assert not result.success  # its 3 tasks would pass its 2-task budget
    assert billed(data_dir)[0] == 2  # the default instance's, and nothing of B's
    wide = client_b.model_copy(update={"budget": round(3 * PRICE, 8)})
    assert materialize(data_dir, wide).success  # the default's 2 tasks are not B's spend
    assert billed(data_dir)[0] == 5


def test_an_instance_name_says_its_provider():
    with pytest.raises(InstanceNameError, match="dataforseo"):
        SerpProviderComponent(provider="dataforseo", name="semscraper_b").instance  # noqa: B018
    with pytest.raises(InstanceNameError, match="not an instance name"):
        SerpProviderComponent(provider="dataforseo", name="Client B").instance  # noqa: B018


def test_an_instance_declared_in_yaml_is_loaded_with_its_variables(tmp_path):
    project = project_copy(tmp_path)
    instance = project / "serp_etl" / "defs" / "dataforseo_client_b"
    instance.mkdir()
    (instance / "defs.yaml").write_text(
        "type: serp_etl.components.SerpProviderComponent\n"
        "attributes:\n"
        "  provider: dataforseo\n"
        "  name: dataforseo_client_b\n"
        "  login_env: CLIENT_B_LOGIN\n"
        "  password_env: CLIENT_B_PASSWORD\n"
        "  budget: 5.0\n"
        "  schedule_hour: 7\n"
        "requirements:\n"
        "  env: [CLIENT_B_LOGIN, CLIENT_B_PASSWORD]\n"
    )
    found = json.loads(run_dg(project, "list", "defs", "--json"))
    keys = {asset["asset_key"] for asset in found["assets"]}
    assert {"dataforseo/organic", "dataforseo_client_b/organic", "semscraper/items"} <= keys
    assert {"dataforseo_client_b_daily_schedule", "dataforseo_daily_schedule"} <= {
        schedule["name"] for schedule in found["schedules"]
    }
    envs = run_dg(project, "list", "envs")
    for variable in ("CLIENT_B_LOGIN", "CLIENT_B_PASSWORD", "DATAFORSEO_LOGIN"):
        assert variable in envs


def task_indexes(ledger: Ledger) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(ledger.engine).get_indexes("tasks")}


def test_a_callback_finds_the_instance_that_created_its_scrape(ledger):
    # A signed delivery names a scrape id only: the ledger says whose it is, by an index on
    # the id (instances share the receiver).
    for scope, scrape_id in (("semscraper", "a" * 32), ("semscraper_client_b", "b" * 32)):
        ledger.start_submit(scope, TODAY, {f"serp-etl/{scope}/{TODAY}/x": {"keyword": "k"}})
        ledger.mark_posted(scope, f"serp-etl/{scope}/{TODAY}/x", scrape_id, None, None, None)
    assert ledger.task_instance("semscraper", "b" * 32) == ("semscraper_client_b", TODAY)
    assert ledger.task_instance("semscraper", "a" * 32) == ("semscraper", TODAY)
    assert ledger.task_instance("dataforseo", "a" * 32) is None  # another provider's
    assert ledger.task_instance("semscraper", "c" * 32) is None
    assert "tasks_by_task_id" in task_indexes(ledger)


def test_a_ledger_of_an_earlier_serp_etl_gets_the_task_id_index(tmp_path):
    path = ledger_path(tmp_path)
    with Ledger(path) as ledger:
        ledger.execute("DROP INDEX tasks_by_task_id")
        assert "tasks_by_task_id" not in task_indexes(ledger)
    with Ledger(path) as ledger:
        assert "tasks_by_task_id" in task_indexes(ledger)
