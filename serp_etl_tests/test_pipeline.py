"""Submit and collect: no task is paid for twice, nothing fetched is lost."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pyarrow.parquet as pq
import pytest

from serp_etl.core.parquet import schema_tag
from serp_etl.core.quality import collection_complete
from serp_etl.core.raw import RAW_TABLE
from serp_etl.providers.dataforseo import pipeline, quality
from serp_etl.providers.dataforseo.pipeline import PROVIDER, SubmitIncomplete
from serp_etl.providers.dataforseo.schema import FLAT_SCHEMAS
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.state.ledger import TaskState
from serp_etl_tests.conftest import (
    TODAY,
    Crash,
    CrashAfter,
    collect_today,
    make_client,
)

DAY = TODAY


class TimeoutAfterSending(httpx.BaseTransport):
    """task_post reaches the sandbox (tasks are created and billed), the answer is lost."""

    def __init__(self, sandbox) -> None:
        self._inner = httpx.WSGITransport(app=sandbox.app)

    def handle_request(self, request):
        response = self._inner.handle_request(request)
        if request.url.path.endswith("/task_post"):
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


def test_submit_posts_each_target_once_and_a_rerun_posts_nothing(client, ledger, sandbox, targets):
    first = pipeline.submit(client, ledger, DAY, targets)
    assert first.posted == len(targets) and first.already_posted == 0
    assert first.posted_cost_usd == pytest.approx(sum(t.price() for t in targets))
    second = pipeline.submit(client, ledger, DAY, targets)
    assert second.posted == 0 and second.already_posted == len(targets)
    assert sandbox.stats()["billed_tasks"] == len(targets)
    assert {t.state for t in ledger.tasks(PROVIDER, DAY)} == {TaskState.POSTED}


def test_a_crash_after_posting_is_recovered_by_tag_not_posted_again(
    client, ledger, sandbox, clock, targets
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "post_tasks"), ledger, DAY, targets)
    assert {t.state for t in ledger.tasks(PROVIDER, DAY)} == {TaskState.INTENT}
    billed = sandbox.stats()["billed_tasks"]
    assert billed == len(targets)

    # Not ready yet: tasks_ready knows nothing, id_list finds them by tag.
    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.recovered == len(targets) and report.posted == 0
    assert sandbox.stats()["billed_tasks"] == billed
    tasks = ledger.tasks(PROVIDER, DAY)
    assert {t.state for t in tasks} == {TaskState.POSTED}
    assert len({t.task_id for t in tasks}) == len(targets)

    clock.now += 120
    collected = collect_today(client, ledger, clock)
    assert sum(collected.ended.values()) == len(targets) and collected.pending == 0


def test_a_crash_after_posting_is_recovered_from_tasks_ready(
    client, ledger, sandbox, clock, targets
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "post_tasks"), ledger, DAY, targets)
    clock.now += 120  # the tasks are ready by the time the rerun comes
    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.recovered == len(targets) and report.posted == 0
    assert sandbox.stats()["billed_tasks"] == len(targets)


def test_a_post_whose_answer_was_lost_is_never_resent(sandbox, ledger, clock, targets, client):
    lossy = make_client(sandbox, clock, transport=TimeoutAfterSending(sandbox))
    with pytest.raises(SubmitIncomplete, match="unknown outcome"):
        pipeline.submit(lossy, ledger, DAY, targets)
    assert sandbox.stats()["billed_tasks"] == len(targets)  # sent once, billed once

    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.recovered == len(targets) and report.posted == 0
    assert sandbox.stats()["billed_tasks"] == len(targets)


def test_intents_that_never_reached_the_provider_are_posted_after_the_lookup(
    client, ledger, sandbox, targets
):
    ledger.record_intents(PROVIDER, DAY, {t.tag(DAY): t.task(DAY) for t in targets[:2]})
    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.recovered == 0 and report.posted == len(targets)
    assert sandbox.stats()["billed_tasks"] == len(targets)


def test_intents_too_old_to_check_are_held_not_posted(client, ledger, sandbox, targets):
    old = targets[0]
    ledger.record_intents(PROVIDER, DAY, {old.tag(DAY): old.task(DAY)})
    long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    ledger.execute("UPDATE tasks SET intent_at = :at", {"at": long_ago})
    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.posted == len(targets) - 1
    assert any("cannot be checked" in m for m in report.messages)
    (held,) = ledger.tasks(PROVIDER, DAY, {TaskState.INTENT})
    assert held.tag == old.tag(DAY)


def test_rejected_tasks_are_recorded_and_not_retried(client, ledger, sandbox, targets):
    bad = targets[0].__class__(
        image_url="https://example.com/x.jpg",
        location_code=2840,
        language_code="en",
        max_crawl_pages=100,
    )
    ledger.record_intents(PROVIDER, DAY, {bad.tag(DAY): {**bad.task(DAY), "colour": "red"}})
    report = pipeline.submit(client, ledger, DAY, targets)
    assert report.rejected == 1 and report.posted == len(targets)
    (rejected,) = ledger.tasks(PROVIDER, DAY, {TaskState.REJECTED})
    assert rejected.status_code == 40506
    assert pipeline.submit(client, ledger, DAY, targets).posted == 0


def test_collect_waits_until_the_deadline_and_keeps_the_rest_pending(
    client, ledger, clock, targets, warehouse
):
    pipeline.submit(client, ledger, DAY, targets)
    early = pipeline.collect(
        client, ledger, DAY, deadline_seconds=10, poll_seconds=5, clock=clock, sleep=clock.sleep
    )
    assert early.pending == len(targets) and early.ended == {}
    assert clock.sleeps == [5, 5]  # polls at 0, 5 and 10 s: paced, no busy loop
    check = collection_complete(ledger, warehouse, PROVIDER, DAY)
    assert not check.passed and check.metadata["pending"] == len(targets)
    by_status = check.metadata["pending_by_last_status"]
    assert set(by_status) <= {"40601", "40602"}  # handed or in queue: not ready
    assert sum(by_status.values()) == len(targets)

    clock.now += 60
    late = collect_today(client, ledger, clock)
    assert sum(late.ended.values()) == len(targets) and late.pending == 0
    assert collection_complete(ledger, warehouse, PROVIDER, DAY).passed


def test_a_task_collected_by_a_crashed_run_is_fetched_again_by_id(client, ledger, clock, targets):
    pipeline.submit(client, ledger, DAY, targets)
    clock.now += 60
    lost = ledger.tasks(PROVIDER, DAY)[0].task_id
    client.task_get(lost)  # collected at the provider, then the process died before storing
    assert lost not in {r.task_id for r in client.tasks_ready()}
    report = collect_today(client, ledger, clock)
    assert report.pending == 0
    assert ledger.tasks(PROVIDER, DAY)[0].state is TaskState.FETCHED


def test_unknown_status_codes_are_reported_not_guessed(sandbox, ledger, clock, targets, client):
    pipeline.submit(client, ledger, DAY, targets[:1])
    (record,) = ledger.tasks(PROVIDER, DAY)

    def future(request):
        return httpx.Response(
            200,
            json={
                "status_code": 20000,
                "status_message": "Ok.",
                "tasks": [
                    {
                        "id": record.task_id,
                        "status_code": 40777,
                        "status_message": "New.",
                        "result": None,
                    }
                ],
            }
            if "task_get" in request.url.path
            else {
                "status_code": 20000,
                "status_message": "Ok.",
                "tasks": [{"id": "r", "status_code": 20000, "result": []}],
            },
        )

    odd = make_client(sandbox, clock, transport=httpx.MockTransport(future))
    report = pipeline.collect(
        odd, ledger, DAY, deadline_seconds=0, poll_seconds=1, clock=clock, sleep=clock.sleep
    )
    assert report.unknown_codes == {"40777": 1} and report.pending == 1
    assert ledger.tasks(PROVIDER, DAY)[0].status_code == 40777


@pytest.mark.parametrize(
    ("code", "message", "recorded"),
    [
        ("40777", "New.", (None, "New. (status_code '40777')")),
        (2**40, "Big.", (None, f"Big. (status_code {2**40})")),
        (40777, {"text": "odd"}, (40777, '{"text":"odd"}')),
        (None, None, (None, None)),
    ],
)
def test_a_task_status_of_any_shape_is_recorded_not_fatal(
    sandbox, ledger, clock, targets, code, message, recorded
):
    # Found by the type checker: the codes and messages of task_get reached the ledger as
    # the provider sent them; an object for a message could not be written at all.
    pipeline.submit(make_client(sandbox, clock), ledger, DAY, targets[:1])
    (record,) = ledger.tasks(PROVIDER, DAY)

    odd = make_client(sandbox, clock, transport=answering(record, code, message))
    report = pipeline.collect(
        odd, ledger, DAY, deadline_seconds=0, poll_seconds=1, clock=clock, sleep=clock.sleep
    )
    assert report.pending == 1 and not report.errors
    (record,) = ledger.tasks(PROVIDER, DAY)
    assert (record.status_code, record.status_message) == recorded


def test_responses_are_published_once_however_often_they_are_stored(
    client, ledger, clock, warehouse, targets
):
    pipeline.submit(client, ledger, DAY, targets)
    clock.now += 60
    collect_today(client, ledger, clock)
    first = TABLES.publish_responses(ledger, warehouse, DAY)
    assert first.rows == len(targets) and first.added == len(targets)
    assert list(ledger.inbox(PROVIDER, DAY)) == []

    # A crash after publishing but before the inbox was cleared: the rows come round again.
    raw = pq.read_table(warehouse.partition_dir(PROVIDER, RAW_TABLE, DAY)).to_pylist()
    again = raw[0]
    meta = {k: v for k, v in again.items() if k not in ("task_id", "body", "body_bytes")}
    meta["fetched_at"] = again["fetched_at"].isoformat()
    ledger.execute("UPDATE tasks SET content_hash = NULL")  # as if never recorded
    ledger.store_response(
        PROVIDER, DAY, again["task_id"], meta, again["body"].encode(), TaskState.FETCHED
    )
    second = TABLES.publish_responses(ledger, warehouse, DAY)
    assert second.rows == len(targets) and second.added == 0


def test_flattened_tables_are_rebuilt_identically_from_raw(
    client, ledger, clock, warehouse, targets
):
    pipeline.submit(client, ledger, DAY, targets)
    clock.now += 60
    collect_today(client, ledger, clock)
    TABLES.publish_responses(ledger, warehouse, DAY)
    one = TABLES.publish_flattened(warehouse, DAY, workers=1)
    organic = warehouse.partition_dir(PROVIDER, "organic", DAY)
    organic_one = pq.read_table(organic)
    two = TABLES.publish_flattened(warehouse, DAY, workers=2)
    assert one == two and one["organic"] > 0
    organic_two = pq.read_table(organic)
    assert organic_two.sort_by("task_id").equals(organic_one.sort_by("task_id"))
    assert quality.items_accounted_for(warehouse, DAY).passed
    TABLES.publish_flattened(warehouse, DAY, workers=1)
    parts = sorted(p.name for p in organic.iterdir())
    assert parts == [f"{schema_tag(FLAT_SCHEMAS['organic'])}-part-0.parquet"]  # no part-1


# -- a past day is never paid for -------------------------------------------------------------


def at(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


def shift(day: str, days: int) -> str:
    return (datetime.fromisoformat(day) + timedelta(days=days)).date().isoformat()


@pytest.mark.parametrize(
    ("partition", "reason"), [(shift(DAY, -3), "past day"), (shift(DAY, 1), "future")]
)
def test_a_day_other_than_today_posts_nothing_and_says_why(
    client, ledger, sandbox, targets, partition, reason
):
    report = pipeline.submit(client, ledger, partition, targets, now=at(DAY, 10))
    assert report.posted == 0 and reason in report.closed_reason
    assert "\n" not in report.closed_reason
    assert sandbox.stats()["billed_tasks"] == 0
    assert ledger.tasks(PROVIDER, partition) == []  # no intent either


def test_yesterday_is_paid_for_only_just_after_midnight(client, ledger, sandbox, targets):
    yesterday = shift(DAY, -1)
    late = pipeline.submit(client, ledger, yesterday, targets[:1], now=at(DAY, 0, 40))
    assert late.posted == 0 and late.closed_reason
    early = pipeline.submit(client, ledger, yesterday, targets[:1], now=at(DAY, 0, 10))
    assert early.posted == 1 and early.closed_reason is None
    assert sandbox.stats()["billed_tasks"] == 1


def test_a_past_day_still_recovers_what_a_crash_posted_and_posts_nothing_new(
    client, ledger, sandbox, clock, targets
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "post_tasks"), ledger, DAY, targets)
    clock.now += 86400
    next_day = datetime.fromtimestamp(clock.now, UTC)
    report = pipeline.submit(client, ledger, DAY, targets, now=next_day)
    assert report.recovered == len(targets) and report.posted == 0
    assert sandbox.stats()["billed_tasks"] == len(targets)
    assert {t.state for t in ledger.tasks(PROVIDER, DAY)} == {TaskState.POSTED}
    collected = collect_today(client, ledger, clock)
    assert sum(collected.ended.values()) == len(targets)


def test_intents_of_a_past_day_that_never_reached_the_provider_end_unposted(
    client, ledger, sandbox, targets
):
    ledger.record_intents(PROVIDER, DAY, {t.tag(DAY): t.task(DAY) for t in targets[:2]})
    report = pipeline.submit(
        # A day and an hour later: past the half hour after midnight that still pays for the
        # day before (run in that half hour, a day later was not late enough).
        client,
        ledger,
        DAY,
        targets,
        now=datetime.now(UTC) + timedelta(days=1, hours=1),
    )
    assert report.posted == 0 and report.recovered == 0
    assert sandbox.stats()["billed_tasks"] == 0
    states = {t.state for t in ledger.tasks(PROVIDER, DAY)}
    assert states == {TaskState.UNPOSTED}


# -- ids of a shape the provider does not document --------------------------------------------


class HostileIds(httpx.BaseTransport):
    """The sandbox, but the listed ids of the given endpoints are not task ids."""

    def __init__(self, sandbox, endpoints: tuple[str, ...]) -> None:
        self._inner = httpx.WSGITransport(app=sandbox.app)
        self._endpoints = endpoints

    def handle_request(self, request):
        response = self._inner.handle_request(request)
        if not request.url.path.endswith(self._endpoints):
            return response
        envelope = orjson.loads(response.read())
        for task in envelope["tasks"]:
            for entry in task.get("result") or []:
                entry["id"] = "../../v3/appendix/user_data"
        return httpx.Response(200, content=orjson.dumps(envelope))


@pytest.mark.parametrize("endpoints", [("/tasks_ready",), ("/tasks_ready", "/id_list")])
def test_a_listed_task_with_a_hostile_id_is_never_posted_again_nor_stored(
    sandbox, ledger, clock, targets, client, endpoints
):
    with pytest.raises(Crash):
        pipeline.submit(CrashAfter(client, "post_tasks"), ledger, DAY, targets)
    clock.now += 120  # ready: listed by tasks_ready
    hostile = make_client(sandbox, clock, transport=HostileIds(sandbox, endpoints))
    report = pipeline.submit(hostile, ledger, DAY, targets)
    assert report.posted == 0 and sandbox.stats()["billed_tasks"] == len(targets)
    assert all(t.task_id is None or "/" not in t.task_id for t in ledger.tasks(PROVIDER))
    if len(endpoints) == 1:  # id_list still names them properly
        assert report.recovered == len(targets)
    else:
        assert {t.state for t in ledger.tasks(PROVIDER, DAY)} == {TaskState.INTENT}
        assert any("invalid id" in m for m in report.messages)


# -- only valid targets are paid for ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"location_name": "Atlantis", "language_code": "en"}, "location_name 'Atlantis'"),
        ({"location_code": 9999, "language_code": "en"}, "location_code 9999"),
        ({"location_code": 2840, "language_name": "Klingon"}, "language_name 'Klingon'"),
        ({"location_code": 2840, "language_code": "tlh"}, "language_code 'tlh'"),
    ],
)
def test_an_unknown_location_or_language_is_refused_before_anything_is_posted(
    client, ledger, sandbox, targets, fields, named
):
    from serp_etl.core.targets import TargetConfigError
    from serp_etl.providers.dataforseo.targets import ImageTarget

    bad = ImageTarget(image_url="https://example.com/x.jpg", **fields)
    named = f"target #{len(targets) + 1} \\('https://example.com/x.jpg'\\): {named}"
    with pytest.raises(TargetConfigError, match=named):
        pipeline.submit(client, ledger, DAY, [*targets, bad])
    assert sandbox.stats()["billed_tasks"] == 0 and ledger.tasks(PROVIDER) == []


def test_names_are_checked_exactly_and_close_ones_suggested(client, ledger, targets):
    from serp_etl.core.targets import TargetConfigError
    from serp_etl.providers.dataforseo.targets import ImageTarget

    near = ImageTarget(
        image_url="https://example.com/x.jpg", location_name="united states", language_code="en"
    )
    with pytest.raises(TargetConfigError, match="did you mean 'United States'"):
        pipeline.submit(client, ledger, DAY, [near])


# -- every task ends in a true state ----------------------------------------------------------


def answering(record, code: object, message: object):
    """task_get answers ``code`` (of any shape) for the task; tasks_ready lists nothing."""

    def answer(request):
        if "task_get" in request.url.path:
            return httpx.Response(
                200,
                json={
                    "status_code": 20000,
                    "status_message": "Ok.",
                    "tasks": [
                        {
                            "id": record.task_id,
                            "status_code": code,
                            "status_message": message,
                            "result": None,
                        }
                    ],
                },
            )
        return httpx.Response(
            200,
            json={
                "status_code": 20000,
                "status_message": "Ok.",
                "tasks": [{"id": "r", "status_code": 20000, "result": []}],
            },
        )

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("code", "state"), [(50000, TaskState.EXHAUSTED), (40777, TaskState.EXHAUSTED)]
)
def test_a_server_or_unknown_code_ends_exhausted_after_its_attempts(
    sandbox, ledger, clock, targets, client, code, state, warehouse
):
    from serp_etl.state.ledger import MAX_ATTEMPTS

    pipeline.submit(client, ledger, DAY, targets[:1])
    (record,) = ledger.tasks(PROVIDER, DAY)
    odd = make_client(sandbox, clock, transport=answering(record, code, "Internal Error."))
    for _ in range(MAX_ATTEMPTS):
        assert ledger.tasks(PROVIDER, DAY)[0].state is TaskState.POSTED
        pipeline.collect(
            odd, ledger, DAY, deadline_seconds=600, poll_seconds=60, clock=clock, sleep=clock.sleep
        )
    (task,) = ledger.tasks(PROVIDER, DAY)
    assert task.state is state and task.status_code == code
    check = collection_complete(ledger, warehouse, PROVIDER, DAY)
    assert not check.passed and check.metadata["by_state"] == {state.value: 1}
    assert "1 exhausted" in check.description
    assert len(list(ledger.inbox(PROVIDER, DAY))) == 1  # its last answer is kept


def test_an_expired_task_is_expired_and_the_check_says_so(
    sandbox, ledger, clock, targets, client, warehouse
):
    pipeline.submit(client, ledger, DAY, targets[:2])
    clock.now += 31 * 86400  # results are kept 30 days
    report = collect_today(client, ledger, clock)
    assert report.ended == {"expired": 2}
    check = collection_complete(ledger, warehouse, PROVIDER, DAY)
    assert not check.passed and "2 expired" in check.description
    assert "every posted task is collected" not in check.description


def test_a_raw_part_that_shrinks_under_a_collected_day_fails_the_check(
    client, ledger, clock, targets, warehouse
):
    pipeline.submit(client, ledger, DAY, targets)
    collect_today(client, ledger, clock)
    TABLES.publish_responses(ledger, warehouse, DAY)
    assert collection_complete(ledger, warehouse, PROVIDER, DAY).passed
    (part,) = warehouse.partition_dir(PROVIDER, RAW_TABLE, DAY).glob("*.parquet")
    table = pq.read_table(part)
    pq.write_table(table.slice(0, 2), part)  # what a COPY over it left
    check = collection_complete(ledger, warehouse, PROVIDER, DAY)
    assert not check.passed
    assert check.metadata["missing_from_raw_table"] == len(targets) - 2
    assert "not in the raw table" in check.description
    part.unlink()
    assert collection_complete(ledger, warehouse, PROVIDER, DAY).metadata[
        "missing_from_raw_table"
    ] == len(targets)


def test_waiting_for_results_says_where_it_stands_at_least_every_30_seconds(
    client, ledger, clock, targets, sandbox, caplog
):
    sandbox.ready_seconds = 10_000  # nothing gets ready: the run waits until its deadline
    pipeline.submit(client, ledger, DAY, targets)
    said: list[float] = []

    class When(logging.Handler):
        def emit(self, record):
            if "not ready yet" in record.getMessage():
                said.append(clock.now)

    handler = When()
    logging.getLogger("serp_etl").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="serp_etl"):
            pipeline.collect(
                client,
                ledger,
                DAY,
                deadline_seconds=300,
                poll_seconds=75,
                clock=clock,
                sleep=clock.sleep,
            )
    finally:
        logging.getLogger("serp_etl").removeHandler(handler)
    start = said[0]
    assert len(said) >= 300 // 30 - 1
    assert max(b - a for a, b in zip(said, said[1:], strict=False)) <= 30  # never silent
    assert sum(clock.sleeps) <= 300 and clock.now - start <= 300
    assert any(f"{len(targets)} tasks not ready yet" in r.getMessage() for r in caplog.records)
