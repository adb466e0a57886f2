"""The official DataForSEO Python client (``dataforseo-client``) against the sandbox, end to
end: the sandbox speaks the real API's shape, as its own client sends and reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from dataforseo_client.api.appendix_api import AppendixApi
from dataforseo_client.api.serp_api import SerpApi
from dataforseo_client.api_client import ApiClient
from dataforseo_client.configuration import Configuration
from dataforseo_client.models.serp_google_search_by_image_task_post_request_info import (
    SerpGoogleSearchByImageTaskPostRequestInfo,
)
from dataforseo_client.models.serp_id_list_request_info import SerpIdListRequestInfo

from serp_etl.providers.dataforseo.targets import load_targets
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl_tests.conftest import EXAMPLE_TARGETS


@pytest.fixture
def official(tmp_path):
    sandbox = DataForSEOSandbox(tmp_path / "dataforseo.sqlite", ready_seconds=0)
    with (
        serving(sandbox.app) as url,
        ApiClient(Configuration(host=url, username=LOGIN, password=PASSWORD)) as client,
    ):
        yield SerpApi(client), AppendixApi(client), sandbox


def test_the_official_client_posts_collects_and_lists_against_the_sandbox(official):
    serp, appendix, sandbox = official
    targets = load_targets(EXAMPLE_TARGETS)
    # Every unset field goes out as null: the live API takes that as unset.
    posted = serp.google_search_by_image_task_post(
        [
            SerpGoogleSearchByImageTaskPostRequestInfo(**t.fields(), tag=f"official-{n}")
            for n, t in enumerate(targets)
        ]
    )
    assert [task.status_code for task in posted.tasks] == [20100] * len(targets)
    assert sandbox.stats()["billed_tasks"] == len(targets)
    ready = serp.google_search_by_image_tasks_ready()
    assert {r.tag for r in ready.tasks[0].result} == {f"official-{n}" for n in range(len(targets))}
    items = 0
    for task in posted.tasks:
        got = serp.google_search_by_image_task_get_advanced(task.id)
        assert got.tasks[0].status_code in (20000, 40102), got.tasks[0].status_message
        if got.tasks[0].status_code == 20000:
            (result,) = got.tasks[0].result
            assert result.image_url in {t.image_url for t in targets}
            items += len(result.items or [])
    assert items > 0
    window = [datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)]
    listed = serp.id_list(
        [
            SerpIdListRequestInfo(
                datetime_from=window[0].strftime("%Y-%m-%d %H:%M:%S +00:00"),
                datetime_to=window[1].strftime("%Y-%m-%d %H:%M:%S +00:00"),
            )
        ]
    )
    assert listed.tasks[0].status_code == 20000
    assert {entry.id for entry in listed.tasks[0].result} == {t.id for t in posted.tasks}
    for answer in (serp.google_locations(), serp.google_languages(), appendix.user_data()):
        assert answer.tasks[0].status_code == 20000 and answer.tasks[0].result


def test_what_the_official_client_reads_keeps_every_field_the_sandbox_sends(official):
    serp, _, sandbox = official
    (target,) = load_targets(EXAMPLE_TARGETS)[:1]
    (task,) = serp.google_search_by_image_task_post(
        [SerpGoogleSearchByImageTaskPostRequestInfo(**target.fields())]
    ).tasks
    raw = serp.google_search_by_image_task_get_advanced_without_preload_content(task.id)
    sent = orjson.loads(raw.read())["tasks"][0]
    read = serp.google_search_by_image_task_get_advanced(task.id).tasks[0].to_dict()
    assert sent["status_code"] == 20000 and sent["result"][0]["items"]  # a whole SERP

    def keys(value, path=""):
        if isinstance(value, dict):
            # An array of objects sent empty or null is left out: the client's to_dict drops
            # one (``if self.links:``), so a faq element without links cannot be told from
            # one whose links the client does not know (a SERP of 2026-12-05 had one).
            return {f"{path}.{k}" for k, v in value.items() if v != [] and v is not None} | {
                p for k, v in value.items() for p in keys(v, f"{path}.{k}")
            }
        if isinstance(value, list):
            return {p for v in value for p in keys(v, f"{path}[]")}
        return set()

    # Every field the sandbox sent with a value is a field of the client's models.
    assert keys(sent) - keys(read) == set()
