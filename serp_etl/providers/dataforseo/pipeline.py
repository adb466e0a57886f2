"""Submit, collect and publish one partition of DataForSEO tasks. Dagster-free.

The rules that keep the user's money safe:

1. Every task gets a deterministic tag (partition date + target) and an ``intent`` row in the
   ledger before it is posted; the tag is posted with it.
2. A tag already ``posted`` (or ``rejected``) is never posted again.
3. An ``intent`` row left by an earlier run may have been posted before a crash. It is looked up
   by its tag in tasks_ready, then id_list, before anything is posted; only a tag the provider
   has no record of is posted.
4. Submits of one provider hold a lock, so two runs never post the same intent concurrently.
5. Intents the ledger has never seen are posted only if neither the warehouse's tasks table nor,
   for a ledger that knows no task at all, id_list holds their tags (``core.lost_state``): a
   lost or foreign ledger refuses instead of paying twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from serp_etl.core.crash_points import crash_point
from serp_etl.core.jsondecode import json_number
from serp_etl.core.lost_state import refuse_unknown_tasks
from serp_etl.core.money import check_budget, closed_day_reason
from serp_etl.core.waiting import wait
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.dataforseo import settings
from serp_etl.providers.dataforseo.client import (
    DataForSEOClient,
    DataForSEOError,
    FetchedTask,
    PostOutcomeUnknown,
    UndecodableResponse,
)
from serp_etl.providers.dataforseo.responses import final_state, response_meta
from serp_etl.providers.dataforseo.settings import Outcome
from serp_etl.providers.dataforseo.tables import TABLES
from serp_etl.providers.dataforseo.targets import ImageTarget, check_reference
from serp_etl.state.ledger import MAX_ATTEMPTS, Ledger, TaskRecord, TaskState, utc_now

PROVIDER = settings.PROVIDER
ID_LIST_MARGIN = timedelta(hours=12)
# How far DataForSEO's clock may be behind ours: a task tagged with a day was posted when our
# clock read that day, so its datetime_posted is not earlier than the day's start less this.
CLOCK_SKEW = timedelta(hours=1)
# Normal priority completes within 45 minutes (guaranteed): a task posted longer ago that
# tasks_ready does not list is worth asking for by id (a crashed run may have collected it).
LATE_AFTER = timedelta(minutes=45)
log = logging.getLogger(__name__)


class SubmitIncomplete(DataForSEOError):
    """Some tasks could not be posted now; the ledger says which, and a rerun resumes safely."""


@dataclass
class SubmitReport:
    targets: int = 0
    already_posted: int = 0
    recovered: int = 0
    posted: int = 0
    rejected: int = 0
    unresolved: int = 0  # posted with an unknown outcome; reconciled by the next run
    posted_cost_usd: float = 0.0
    estimated_cost_usd: float = 0.0
    balance_usd: float | None = None
    closed_reason: str | None = None  # why nothing may be posted for this day
    messages: list[str] = field(default_factory=list)


@dataclass
class CollectReport:
    ended: dict[str, int] = field(default_factory=dict)  # final state -> tasks this run
    corrected: int = 0  # new versions of tasks DataForSEO re-parsed
    pending: int = 0
    unknown_codes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# -- submit ----------------------------------------------------------------------------------


def submit(
    client: DataForSEOClient,
    ledger: Ledger,
    partition: str,
    targets: list[ImageTarget],
    *,
    budget_usd: float | None = None,
    now: datetime | None = None,
    warehouse: Warehouse | None = None,
    scope: str = PROVIDER,
) -> SubmitReport:
    """Post the day's tasks, once, within the account's balance and the day's ``budget_usd``.
    For a day that cannot be paid for (see ``core.money``), post nothing: only look up what a
    crash of that day may have posted. ``warehouse``: whose tasks table the new intents are
    checked against (rule 5); the Dagster step always gives it. ``scope``: the provider
    instance (``providers.instances``) whose tasks, budget and tags these are."""
    now = now or utc_now()
    report = SubmitReport(targets=len(targets))
    report.closed_reason = closed_day_reason(partition, now)
    if targets and not report.closed_reason:
        check_reference(targets, client.locations(), client.languages())
    with ledger.submit_lock(scope):
        if report.closed_reason:
            leftovers = ledger.tasks(scope, partition, {TaskState.INTENT})
        else:
            tasks = {
                target.tag(partition, scope): target.task(partition, scope) for target in targets
            }
            refuse_unknown_tasks(
                ledger,
                scope,
                partition,
                tasks,
                warehouse,
                lambda fresh: _posted_tags(client, ledger, partition, fresh, now, scope),
            )
            report.already_posted, leftovers = ledger.start_submit(scope, partition, tasks)
            crash_point("dataforseo.intents_recorded")
        held = _recover(client, ledger, leftovers, report, now, scope) if leftovers else set()
        to_post = [
            t for t in ledger.tasks(scope, partition, {TaskState.INTENT}) if t.tag not in held
        ]
        if report.closed_reason:
            # Looked up and not found: the provider never saw them, and now never will.
            ledger.mark_unposted(scope, [t.tag for t in to_post], report.closed_reason)
            return report
        if to_post:
            _check_budget(client, ledger, partition, to_post, budget_usd, report, scope)
        for start in range(0, len(to_post), settings.MAX_TASKS_PER_POST):
            batch = to_post[start : start + settings.MAX_TASKS_PER_POST]
            try:
                _post_batch(client, ledger, batch, report, scope)
                crash_point("dataforseo.posted_recorded")
            except PostOutcomeUnknown as error:
                # Leave the batch as intents: the next run finds them by tag before posting.
                report.unresolved += len(batch)
                report.messages.append(
                    f"{len(batch)} tasks posted with an unknown outcome "
                    f"({error}); a rerun looks them up before posting"
                )
                break
    if report.unresolved:
        raise SubmitIncomplete("; ".join(report.messages))
    return report


def _posted_tags(
    client: DataForSEOClient,
    ledger: Ledger,
    partition: str,
    fresh: set[str],
    now: datetime,
    scope: str,
) -> set[str]:
    """Rule 5: which of the ``fresh`` tags DataForSEO has tasks for. Asked only of a ledger
    that knows no task at all (new, or lost): id_list lists what the account posted since the
    day began. A ledger with a history is checked against the warehouse alone: listing every
    task of a shared account's day at every run would take hours at 1,000 a call and 10 calls
    a minute."""
    if ledger.knows_any(scope):
        return set()
    since = datetime.fromisoformat(partition).replace(tzinfo=UTC) - CLOCK_SKEW
    return {
        listed.tag for listed in client.id_list(since, now + ID_LIST_MARGIN) if listed.tag in fresh
    }


def _check_budget(
    client: DataForSEOClient,
    ledger: Ledger,
    partition: str,
    to_post: list[TaskRecord],
    budget_usd: float | None,
    report: SubmitReport,
    scope: str,
) -> None:
    estimate = round(
        sum(
            settings.task_price(
                int(t.target.get("priority") or 1),
                int(t.target.get("max_crawl_pages") or 1),
                bool(t.target.get("calculate_rectangles")),
            )
            for t in to_post
        ),
        8,
    )
    money = client.user_data().get("money")
    balance = json_number(money.get("balance")) if type(money) is dict else None
    if balance is None:
        raise DataForSEOError(f"{settings.USER_DATA}: no numeric money.balance: nothing posted")
    report.estimated_cost_usd, report.balance_usd = estimate, balance
    check_budget(
        action=f"posting {len(to_post)} tasks",
        estimate=estimate,
        balance=float(balance),
        spent_today=ledger.spent(scope, partition),
        budget=budget_usd,
        currency=settings.CURRENCY,
    )


def _recover(
    client: DataForSEOClient,
    ledger: Ledger,
    leftovers: list[TaskRecord],
    report: SubmitReport,
    now: datetime,
    scope: str,
) -> set[str]:
    """Find intents of earlier runs among the provider's own records, by tag.

    Found ones become ``posted``. Returns the tags that must not be posted now either.
    """
    wanted = {t.tag for t in leftovers}
    found: dict[str, tuple[str, float | None]] = {}
    # A tag listed with an id that is not a task id: the task exists, so it is never posted
    # again, and the id never reaches the ledger; id_list may still name it properly.
    malformed: set[str] = set()

    def note(tag: str | None, task_id: str | None, cost: float | None) -> None:
        if tag not in wanted or tag in found:
            return
        if task_id is None:
            malformed.add(tag)
        else:
            found[tag] = (task_id, cost)

    for ready in client.tasks_ready():
        note(ready.tag, ready.task_id, None)
    held: set[str] = set()
    missing = [t for t in leftovers if t.tag not in found]
    if missing:
        since = min(datetime.fromisoformat(t.intent_at) for t in missing)
        checkable_since = now - timedelta(days=settings.ID_LIST_METADATA_DAYS)
        held = {t.tag for t in missing if datetime.fromisoformat(t.intent_at) < checkable_since}
        if held:
            # id_list keeps a task's metadata (its tag) for one month: these cannot be checked,
            # so they are never posted.
            report.messages.append(
                f"{len(held)} intents older than "
                f"{settings.ID_LIST_METADATA_DAYS} days cannot be checked "
                "against id_list and are not posted"
            )
        if len(held) < len(missing):
            # datetime_posted is the provider's clock, intent_at ours: a wide margin on both
            # sides keeps clock skew from hiding a posted task (a miss would post it again).
            since = max(since, checkable_since) - ID_LIST_MARGIN
            for listed in client.id_list(since, now + ID_LIST_MARGIN):
                note(listed.tag, listed.task_id, listed.cost)
    malformed -= found.keys()
    if malformed:
        held |= malformed
        report.messages.append(
            f"{len(malformed)} tasks are listed by the provider with an "
            "invalid id: held, neither posted again nor recorded"
        )
    for tag, (task_id, cost) in found.items():
        ledger.mark_posted(scope, tag, task_id, cost, 20100, "Task Created. (recovered by tag)")
        log.info("recovered task %s for tag %s instead of posting it again", task_id, tag)
    report.recovered = len(found)
    return held


def _post_batch(
    client: DataForSEOClient,
    ledger: Ledger,
    batch: list[TaskRecord],
    report: SubmitReport,
    scope: str,
) -> None:
    posted = client.post_tasks([{**t.target, "tag": t.tag} for t in batch])
    crash_point("dataforseo.posted")
    by_tag = {t.tag: t for t in batch}
    for position, task in enumerate(posted):
        tag = task.tag if task.tag in by_tag else None
        if tag is None and position < len(batch) and task.tag is None:
            tag = batch[position].tag  # no echo of the tag: the API keeps the posted order
        if tag is None:
            report.messages.append(f"task_post answered a task with unknown tag {task.tag!r}")
            continue
        if task.outcome is Outcome.SUCCESS and task.task_id:
            ledger.mark_posted(
                scope, tag, task.task_id, task.cost, task.status_code, task.status_message
            )
            report.posted += 1
            report.posted_cost_usd += task.cost or 0.0
        elif task.outcome is Outcome.PERMANENT:
            ledger.mark_rejected(scope, tag, task.status_code, task.status_message)
            report.rejected += 1
            report.messages.append(f"{tag}: rejected, {task.status_code} {task.status_message}")
        else:
            # Created or not? Unknown: keep the intent so the next run looks it up by tag.
            report.unresolved += 1
            report.messages.append(
                f"{tag}: status {task.status_code} {task.status_message!r} "
                "at posting is not understood; left to be looked up by tag"
            )
    report.posted_cost_usd = round(report.posted_cost_usd, 8)


# -- collect ---------------------------------------------------------------------------------


def collect(
    client: DataForSEOClient,
    ledger: Ledger,
    partition: str,
    *,
    deadline_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    scope: str = PROVIDER,
) -> CollectReport:
    """Fetch every posted task of ``partition`` that is ready, until none is left or the
    deadline passes. Tasks still not ready stay ``posted`` in the ledger: pending, not lost.
    Each ends in its true state (``TaskState``): fetched, empty, failed, expired, or, after
    ``MAX_ATTEMPTS`` runs of answers that may pass, exhausted or undecodable."""
    run = _Collection(client, ledger, partition, scope)
    deadline = clock() + deadline_seconds
    log.info(
        "%s: %d tasks to collect, for up to %.0f s", partition, len(run.pending()), deadline_seconds
    )
    first = True
    while run.pending():
        ready = client.tasks_ready()
        ours = [r.task_id for r in ready if r.task_id in run.pending()]
        run.fetch(ours)
        if first or (len(ready) >= settings.MAX_TASKS_READY and not ours):
            # Once a run, and whenever the list is full of other tasks: ask by id. A task an
            # earlier run collected (and crashed, or could not read) is no longer listed.
            run.fetch(list(run.pending()))
            first = False
        if not run.pending() or clock() + poll_seconds > deadline:
            break
        wait(
            poll_seconds,
            sleep,
            lambda: (
                f"{partition}: {len(run.pending())} tasks not ready yet, "
                f"{sum(run.report.ended.values())} collected this run, "
                f"{max(0.0, deadline - clock()):.0f} s to the deadline"
            ),
            log,
        )
    # Last look by id: a task collected by a crashed run is no longer in tasks_ready.
    run.fetch(list(run.pending()))
    run.correct()
    run.report.pending = len(ledger.tasks(scope, partition, {TaskState.POSTED}))
    return run.report


class _Collection:
    """One run's collection of one partition."""

    def __init__(
        self, client: DataForSEOClient, ledger: Ledger, partition: str, scope: str
    ) -> None:
        self.client, self.ledger, self.partition, self.scope = client, ledger, partition, scope
        self.report = CollectReport()
        # Answered this run with something that may pass, or unreachable: left to the next run
        # rather than waited for until the deadline.
        self.set_aside: set[str] = set()

    def pending(self) -> dict[str, TaskRecord]:
        # Read again each time: another run, or an import, may have collected some meanwhile.
        return {
            t.task_id: t
            for t in self.ledger.tasks(self.scope, self.partition, {TaskState.POSTED})
            if t.task_id and t.task_id not in self.set_aside
        }

    def fetch(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            try:
                fetched = self.client.task_get(task_id)
            except UndecodableResponse as error:
                self._attempt(
                    task_id, None, f"undecodable: {error.reason}", error.body, TaskState.UNDECODABLE
                )
                continue
            except DataForSEOError as error:
                # The API did not answer this time (or too much, for the size cap): not an
                # attempt of the task's. One task's trouble is not its batch-mates': note it
                # (collection_complete shows it) and carry on.
                self.report.errors.append(f"{task_id}: {error}")
                self.ledger.note_status(self.scope, task_id, None, str(error)[:500])
                self.set_aside.add(task_id)
                continue
            crash_point("dataforseo.fetched")
            if fetched.outcome is Outcome.NOT_READY:
                self.ledger.note_status(
                    self.scope, task_id, fetched.status_code, fetched.status_message
                )
            elif fetched.outcome in (Outcome.RETRYABLE, Outcome.UNKNOWN):
                if fetched.outcome is Outcome.UNKNOWN:
                    key = str(fetched.status_code)
                    self.report.unknown_codes[key] = self.report.unknown_codes.get(key, 0) + 1
                self._attempt(
                    task_id,
                    fetched.status_code,
                    fetched.status_message,
                    fetched.body,
                    TaskState.EXHAUSTED,
                    fetched,
                )
            else:
                self._store(task_id, fetched, final_state(fetched.outcome, fetched.status_code))

    def correct(self) -> None:
        """Fetch again the tasks of the partition that DataForSEO re-parsed (tasks_fixed): a
        changed result is a new version; an unchanged one adds nothing."""
        collected = {
            t.task_id
            for t in self.ledger.tasks(
                self.scope, self.partition, {TaskState.FETCHED, TaskState.EMPTY}
            )
            if t.task_id
        }
        try:
            fixed = [
                r.task_id for r in self.client.tasks_fixed() if r.task_id and r.task_id in collected
            ]
        except DataForSEOError as error:
            self.report.errors.append(f"tasks_fixed: {error}")
            return
        for task_id in fixed:
            try:
                fetched = self.client.task_get(task_id)
            except DataForSEOError as error:
                self.report.errors.append(f"{task_id} (fixed): {error}")
                continue
            if fetched.outcome not in (Outcome.SUCCESS, Outcome.BILLED_EMPTY):
                continue
            meta = TABLES.version(
                fetched.body, response_meta(fetched, fetched.fetched_at, "tasks_fixed")
            )
            if self.ledger.store_response(
                self.scope,
                self.partition,
                task_id,
                meta,
                fetched.body,
                final_state(fetched.outcome, fetched.status_code),
            ):
                self.report.corrected += 1

    def _attempt(
        self,
        task_id: str,
        code: int | None,
        message: str | None,
        body: bytes,
        given_up: TaskState,
        fetched: FetchedTask | None = None,
    ) -> None:
        """Count a run of an answer that may pass; after MAX_ATTEMPTS, keep it as final."""
        self.set_aside.add(task_id)
        attempts = self.ledger.note_attempt(self.scope, task_id, code, message)
        if attempts < MAX_ATTEMPTS:
            return
        if fetched is None:
            fetched = FetchedTask(
                task_id, None, code, message, Outcome.UNKNOWN, None, None, body, utc_now()
            )
        self._store(task_id, fetched, given_up)

    def _store(self, task_id: str, fetched: FetchedTask, state: TaskState) -> None:
        meta = TABLES.version(fetched.body, response_meta(fetched, fetched.fetched_at, "api"))
        if state is TaskState.UNDECODABLE:
            meta["outcome"] = "undecodable"
        self.ledger.store_response(self.scope, self.partition, task_id, meta, fetched.body, state)
        crash_point("dataforseo.response_stored")
        counts = self.report.ended
        counts[state.value] = counts.get(state.value, 0) + 1


# -- late results ----------------------------------------------------------------------------


def late_results(
    client: DataForSEOClient, ledger: Ledger, now: datetime | None = None, scope: str = PROVIDER
) -> dict[str, list[str]]:
    """Partitions with results waiting, each with what says so: tasks tasks_ready lists, tasks
    late enough to ask for by id, tasks DataForSEO re-parsed, responses not yet published.
    Free calls only."""
    now = now or utc_now()
    evidence: dict[str, set[str]] = {}
    ready = {r.task_id for r in client.tasks_ready() if r.task_id}
    for task in ledger.tasks(scope, states={TaskState.POSTED}):
        if task.task_id in ready:
            evidence.setdefault(task.partition_date, set()).add(f"ready:{task.task_id}")
        elif task.posted_at and now - datetime.fromisoformat(task.posted_at) > LATE_AFTER:
            # With its attempts: a run that counted one makes the next one worth requesting.
            mark = f"late:{task.task_id}:{task.attempts}"
            evidence.setdefault(task.partition_date, set()).add(mark)
    collected = {
        t.task_id: t for t in ledger.tasks(scope, states={TaskState.FETCHED, TaskState.EMPTY})
    }
    for fixed in client.tasks_fixed():
        if fixed.task_id in collected:
            task = collected[fixed.task_id]
            evidence.setdefault(task.partition_date, set()).add(
                f"fixed:{task.task_id}:{task.content_hash}"
            )
    for partition, count in ledger.inbox_partitions(scope).items():
        evidence.setdefault(partition, set()).add(f"unpublished:{count}")
    return {partition: sorted(marks) for partition, marks in evidence.items()}
