"""The daily report: self-contained HTML with the day's numbers, and its Dagster asset."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import dagster as dg
import pytest

from serp_etl import catalog, report
from serp_etl.defs.dataforseo_assets import DATAFORSEO
from serp_etl.defs.reports import report_asset, report_path
from serp_etl.defs.resources import WarehouseResource
from serp_etl.state.ledger import Ledger, ledger_path
from serp_etl_tests import sandbox_days
from serp_etl_tests.conftest import imported

DAY = sandbox_days.DAYS[-1]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return sandbox_days.build(tmp_path_factory.mktemp("report") / "data")


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parsed(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    elements.close()
    return elements


@pytest.mark.parametrize("provider", ["dataforseo", "semscraper"])
def test_the_report_holds_the_days_numbers_and_needs_no_network(warehouse, provider):
    with catalog.connect(warehouse.data_dir) as connection:
        built = report.build(connection, provider, DAY)
        new_pages = connection.execute(
            "SELECT count(*) FROM image_hosts WHERE date = ? AND is_new_page", [DAY]
        ).fetchone()[0]
        serps = connection.execute(
            "SELECT count(*) FROM serp_searches WHERE provider = ? AND date = ?", [provider, DAY]
        ).fetchone()[0]
    with Ledger(ledger_path(warehouse.data_dir)) as ledger:
        tasks = ledger.tasks(provider, DAY)
    figures = built.figures
    assert figures["tasks"] == len(tasks) and figures["serps"] == serps > 0
    assert figures["cost"] == pytest.approx(sum(t.cost for t in tasks))
    assert figures["fetched"] == sum(t.state == "fetched" for t in tasks)
    assert figures["empty"] == sum(t.state == "empty" for t in tasks)
    if provider == "dataforseo":
        assert figures["new_pages"] == new_pages > 0
        assert f"{new_pages} pages" in built.markdown
    assert f"{serps} SERPs" in built.markdown

    page = parsed(built.html)
    tags = [tag for tag, _ in page.tags]
    # One rank chart per target collected on the day, one spend chart.
    assert tags.count("svg") == serps + 1
    assert tags.count("polyline") >= serps
    # Self-contained: nothing is loaded when it is opened.
    assert not {"script", "link", "img", "iframe"} & set(tags)
    assert not any("src" in attrs for _, attrs in page.tags)
    summary = re.search(r'<p id="summary">([^<]*)</p>', built.html).group(1)
    assert summary.startswith(f"{serps} SERPs, {figures['items']} items, {len(tasks)} tasks")


def test_the_report_asset_writes_the_page_and_shows_its_summary(warehouse):
    result = dg.materialize(
        [report_asset(DATAFORSEO)],
        partition_key=DAY,
        resources={"warehouse": WarehouseResource(data_dir=str(warehouse.data_dir))},
    )
    assert result.success
    (event,) = result.asset_materializations_for_node("dataforseo__report")
    path = report_path(str(warehouse.data_dir), "dataforseo", DAY)
    assert event.metadata["report"].value == str(path.resolve())
    summary = event.metadata["summary"].value
    assert summary.startswith("**My sites**: ") and f"\n\n**dataforseo, {DAY}**: " in summary
    assert path.read_text().startswith("<!doctype html>")
    assert not list(path.parent.glob(".*.tmp"))


def test_late_results_redo_the_report_too():
    from serp_etl import definitions
    from serp_etl_tests.default_instances import dataforseo_collect_job

    selected = dataforseo_collect_job.selection.resolve(definitions.defs.resolve_asset_graph())
    assert DATAFORSEO.key("report") in selected
    assert DATAFORSEO.key("tasks") not in selected  # never the paid step


def test_an_imported_days_report_says_how_its_tasks_ended_is_not_known(tmp_path):

    data, day = tmp_path / "data", "2026-04-01"
    imported(data, day)
    with catalog.connect(data) as connection:
        built = report.build(connection, "dataforseo", day)
    assert built.figures["tasks"] == 1 and built.figures["fetched"] is None
    assert "Health: not known (the day was imported" in built.markdown
    assert "None" not in built.html and "not known (imported)" in built.html


def test_each_legend_label_has_its_lines_colour(warehouse):
    """A label's fill is its line's stroke, and no style rule of the page overrides it (a CSS
    ``fill`` on the labels' class turned every label grey)."""
    with catalog.connect(warehouse.data_dir) as connection:
        page = report.build(connection, "semscraper", DAY).html
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)
    assert not re.search(r"\.legend[^{]*\{[^}]*fill", style)
    strokes = re.findall(r'<polyline [^>]*stroke="([^"]+)"', page)
    labels = re.findall(r'<text [^>]*class="legend" fill="([^"]+)"', page)
    assert labels and labels == strokes


def test_a_first_day_says_why_it_shows_no_new_hosts(warehouse):
    with catalog.connect(warehouse.data_dir) as connection:
        first = report.build(connection, "dataforseo", sandbox_days.DAYS[0])
        later = report.build(connection, "dataforseo", sandbox_days.DAYS[-1])
    assert first.figures["new_pages"] == 0 and first.figures["images_on_first_day"] > 0
    assert "collected for the first time on this day" in first.html
    assert "collected for the first time: nothing to compare with yet" in first.markdown
    assert later.figures["images_on_first_day"] == 0
    assert "New hosts of each image" in later.html
    assert "for the first time" not in later.html + later.markdown
