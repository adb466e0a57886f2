"""Submit and collect one partition of SemScraper scrapes. Dagster-free.

The money rules of the DataForSEO pipeline, adapted to an API with no tag field:

1. Every scrape gets a deterministic key (partition date + target) and an ``intent`` row in the
   ledger before it is created.
2. A key already ``posted`` (or ``rejected``) is never created again.
3. An ``intent`` left by an earlier run may have been created before a crash; its id is then
   unknown. It shows up in the completed-not-retrieved list once done, found by its target
   fields. Retrieving it (to see its creation time) takes it off that list, so every candidate
   is recorded in the ledger first, and a later run resumes from that record; a candidate is
   claimed only by an intent of the day it was created on. While the account has scrapes
   pending or processing, an unresolved intent is held, not created: only when nothing is in
   flight and no candidate may be it is it certain that it was never created.
4. Before creating anything, the estimated cost is checked against the credit and, with what
   the day already spent, against the daily budget.
5. Intents the ledger has never seen are created only if neither the warehouse's tasks table
   nor the finished-not-retrieved list (scrapes of their targets the ledger does not know)
   holds them (``core.lost_state``): a lost or foreign ledger refuses instead of paying twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from serp_etl.core.crash_points import crash_point
from serp_etl.core.flatten import as_number
from serp_etl.core.lost_state import refuse_unknown_tasks
from serp_etl.core.money import SUBMIT_GRACE, check_budget, closed_day_reason
from serp_etl.core.waiting import wait
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.semscraper import settings
from serp_etl.providers.semscraper.client import (
    InvalidScrapeId,
    PostOutcomeUnknown,
    Scrape,
    SemScraperClient,
    SemScraperError,
    check_scrape_id,
)
from serp_etl.providers.semscraper.tables import TABLES
from serp_etl.providers.semscraper.targets import check_locations
from serp_etl.state.ledger import MAX_ATTEMPTS, Ledger, TaskRecord, TaskState, utc_now

PROVIDER = settings.PROVIDER
TARGET_FIELDS = ("keyword", "device", "location", "language", "depth")
# The provider's clock against ours: a scrape created this long before its intent still counts.
CLOCK_MARGIN = timedelta(minutes=10)
DAY = timedelta(days=1)
log = logging.getLogger(__name__)


class SubmitIncomplete(SemScraperError):
    """Some scrapes could not be created now; the ledger says which, and a rerun resumes."""


@dataclass
class SubmitReport:
    targets: int = 0
    already_posted: int = 0
    recovered: int = 0
    posted: int = 0
    held: int = 0
    estimated_cost_eur: float = 0.0
    balance_eur: float | None = None
    closed_reason: str | None = None  # why nothing may be created for this day
    messages: list[str] = field(default_factory=list)


@dataclass
class CollectReport:
    ended: dict[str, int] = field(default_factory=dict)  # final state -> scrapes this run
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def scrape_key(partition: str, scrape: Scrape, scope: str = PROVIDER) -> str:
    """The ledger's tag for a scrape of the provider instance ``scope``: the same target on
    the same date is one scrape."""
    # Where results are delivered is configuration, not the target: not part of the key.
    target = {k: v for k, v in scrape.body().items() if k != "callback_url"}
    digest = hashlib.sha256(orjson.dumps(target, option=orjson.OPT_SORT_KEYS))
    return f"serp-etl/{scope}/{partition}/{digest.hexdigest()[:32]}"


def same_target(entry: dict, target: dict) -> bool:
    """Whether a listed or retrieved scrape asks what ``target`` asks."""
    if not all(
        entry.get(name) == target.get(name, 1 if name == "depth" else None)
        for name in TARGET_FIELDS
    ):
        return False
    return (entry.get("geolocation") or None) == target.get("geolocation")  # none is false


def submit(
    client: SemScraperClient,
    ledger: Ledger,
    partition: str,
    scrapes: list[Scrape],
    *,
    budget_eur: float | None = None,
    now: datetime | None = None,
    warehouse: Warehouse | None = None,
    scope: str = PROVIDER,
) -> SubmitReport:
    """Create the day's scrapes, once, within the credit and the day's ``budget_eur``. For a
    day that cannot be paid for (see ``core.money``), create nothing: only look up what a crash
    of that day may have created. ``warehouse``: whose tasks table the new intents are checked
    against (rule 5); the Dagster step always gives it. ``scope``: the provider instance
    (``providers.instances``) whose scrapes, budget and keys these are."""
    now = now or utc_now()
    report = SubmitReport(targets=len(scrapes))
    report.closed_reason = closed_day_reason(partition, now)
    if scrapes and not report.closed_reason:
        check_locations(scrapes, client.locations())
    with ledger.submit_lock(scope):
        if report.closed_reason:
            leftovers = ledger.tasks(scope, partition, {TaskState.INTENT})
        else:
            wanted = {scrape_key(partition, s, scope): s.body() for s in scrapes}
            refuse_unknown_tasks(
                ledger,
                scope,
                partition,
                wanted,
                warehouse,
                lambda fresh: _finished_tags(
                    client, ledger, {key: wanted[key] for key in fresh}, scope
                ),
            )
            report.already_posted, leftovers = ledger.start_submit(scope, partition, wanted)
            crash_point("semscraper.intents_recorded")
        held = _recover(client, ledger, leftovers, report, scope) if leftovers else set()
        to_post = [
            t for t in ledger.tasks(scope, partition, {TaskState.INTENT}) if t.tag not in held
        ]
        report.held = len(held)
        if report.closed_reason:
            # Looked up and not found, nothing in flight: never created, and now never will be.
            ledger.mark_unposted(scope, [t.tag for t in to_post], report.closed_reason)
            return report
        if to_post:
            _check_budget(
                client,
                ledger,
                partition,
                [Scrape(**t.target) for t in to_post],
                budget_eur,
                report,
                scope,
            )
        for start in range(0, len(to_post), settings.MAX_SCRAPES_PER_POST):
            batch = to_post[start : start + settings.MAX_SCRAPES_PER_POST]
            try:
                created, _ = client.create([Scrape(**t.target) for t in batch])
            except PostOutcomeUnknown as error:
                report.messages.append(
                    f"{len(batch)} scrapes created with an unknown outcome "
                    f"({error}); a rerun finds them before creating any"
                )
                raise SubmitIncomplete("; ".join(report.messages)) from error
            crash_point("semscraper.created")
            _record_created(ledger, batch, created, report, scope)
            crash_point("semscraper.created_recorded")
    return report


def _finished_tags(
    client: SemScraperClient, ledger: Ledger, fresh: dict[str, dict], scope: str
) -> set[str]:
    """Rule 5: which of the ``fresh`` keys SemScraper has a scrape for. It can tell only of
    finished scrapes not retrieved yet; a scrape of the same target that the ledger does not
    know (of any day) counts, but for one an unresolved intent (of any day) may own: its own
    day's recovery claims it."""
    unresolved = [t.target for t in ledger.tasks(scope, states={TaskState.INTENT})]
    return {
        key
        for _, key in unknown_scrapes(
            client.completed_not_retrieved(), ledger.provider_task_ids(PROVIDER), unresolved, fresh
        )
    }


def unknown_scrapes(
    listed: Sequence[dict], known_ids: set[str], unresolved: list[dict], targets: dict[str, dict]
) -> list[tuple[dict, str]]:
    """The scrapes of ``listed`` (finished, not retrieved) whose id is not in ``known_ids``,
    each with the key of the target of ``targets`` it is of; those of an ``unresolved``
    intent's target are left out (they may be that intent's)."""
    return [
        (entry, key)
        for entry in listed
        if entry.get("id") not in known_ids
        and not any(same_target(entry, target) for target in unresolved)
        for key, target in targets.items()
        if same_target(entry, target)
    ]


def _check_budget(
    client: SemScraperClient,
    ledger: Ledger,
    partition: str,
    scrapes: list[Scrape],
    budget_eur: float | None,
    report: SubmitReport,
    scope: str,
) -> None:
    estimate = round(sum(s.price() for s in scrapes), 8)
    balance = client.credit()
    ledger.note_balance(scope, partition, balance)  # where the day's credit movement starts
    report.estimated_cost_eur, report.balance_eur = estimate, balance
    check_budget(
        action=f"creating {len(scrapes)} scrapes",
        estimate=estimate,
        balance=balance,
        spent_today=ledger.spent(scope, partition),
        budget=budget_eur,
        currency=settings.CURRENCY,
        balance_name="credit",
    )


def _record_created(
    ledger: Ledger, batch: list[TaskRecord], created: list[dict], report: SubmitReport, scope: str
) -> None:
    """Record each created scrape against its intent (the API answers in the order posted).
    An answer that does not fit leaves its intents to be found again by target."""
    if len(created) != len(batch):
        raise SubmitIncomplete(
            f"asked for {len(batch)} scrapes, the answer lists "
            f"{len(created)}: left as intents to be looked up"
        )
    refused = []
    for task, scrape in zip(batch, created, strict=True):
        try:
            scrape_id = check_scrape_id(scrape.get("id"))
        except InvalidScrapeId as error:
            refused.append(str(error))
            continue
        ledger.mark_posted(
            scope, task.tag, scrape_id, as_number(scrape.get("cost")), None, scrape.get("status")
        )
        report.posted += 1
    if refused:
        raise SubmitIncomplete(
            f"the create answer holds {len(refused)} invalid id(s) "
            f"({refused[0]}): left as intents, to be found by target"
        )


def _recover(
    client: SemScraperClient,
    ledger: Ledger,
    leftovers: list[TaskRecord],
    report: SubmitReport,
    scope: str,
) -> set[str]:
    """Find intents of earlier runs among the account's finished scrapes, by target.

    Found ones become ``fetched``, with the SERP that finding them retrieved. Returns the keys
    that must not be created now: those whose scrape may still turn up.
    """
    # The status before the list: a scrape in flight at the status call that finishes before
    # the list call is then listed; the other way round, it could slip between the two.
    in_flight = sum(
        entry.get("count") or 0
        for entry in client.status()
        if entry.get("status") in ("pending", "processing")
    )
    known = ledger.provider_task_ids(PROVIDER)
    listed = [
        entry
        for entry in client.completed_not_retrieved()
        if isinstance(entry.get("id"), str)
        and settings.SCRAPE_ID.match(entry["id"])
        and entry["id"] not in known
        and any(same_target(entry, t.target) for t in leftovers)
    ]
    # Retrieving a scrape takes it off the list for good: each candidate is recorded first, so
    # that a run whose retrieve answer is lost finds it here again, not by creating it twice.
    ledger.record_candidates(scope, listed)
    crash_point("semscraper.candidates_recorded")
    _look_at_candidates(client, ledger, leftovers, scope)
    crash_point("semscraper.candidates_retrieved")

    candidates = [
        (c, orjson.loads(c.body) if c.body else None)
        for c in ledger.candidates(scope)
        if any(same_target(c.listed, t.target) for t in leftovers)
    ]
    held: set[str] = set()
    for task in leftovers:
        mine = [(c, serp) for c, serp in candidates if same_target(c.listed, task.target)]
        matched = [(c, serp) for c, serp in mine if serp and _created_for(serp, task)]
        if matched:
            candidate, serp = min(matched, key=lambda pair: pair[1]["created_at"])
            candidates.remove((candidate, serp))
            assert candidate.body is not None  # looked at: its serp was read from it
            ledger.claim_candidate(
                scope,
                task.tag,
                task.partition_date,
                candidate,
                as_number(serp.get("cost")),
                TABLES.version(candidate.body, _meta(serp, "recovery")),
            )
            report.recovered += 1
            log.info(
                "recovered scrape %s for %s instead of creating it again",
                candidate.task_id,
                task.tag,
            )
        elif in_flight or any(serp is None for _, serp in mine):
            held.add(task.tag)  # its scrape may be in flight, or one not yet looked at
    if held:
        report.messages.append(
            f"{len(held)} scrapes of an interrupted run are not found yet "
            f"({in_flight} in flight): held, so that none is created twice"
        )
    return held


def _look_at_candidates(
    client: SemScraperClient, ledger: Ledger, leftovers: list[TaskRecord], scope: str
) -> None:
    """Retrieve the candidates not looked at yet (this run's and those an earlier run recorded
    but never saw the answer for), 100 a call, and keep what came back."""
    unseen = [
        c.task_id
        for c in ledger.candidates(scope)
        if c.body is None and any(same_target(c.listed, t.target) for t in leftovers)
    ]
    for start in range(0, len(unseen), settings.MAX_IDS_PER_GET):
        chunk = unseen[start : start + settings.MAX_IDS_PER_GET]
        ledger.keep_candidate_bodies(
            scope,
            {
                retrieved.scrape_id: retrieved.body
                for retrieved in client.retrieve_answer(chunk).serps
                if retrieved.serp
                and retrieved.serp.get("status") == "done"
                and retrieved.scrape_id in chunk
            },
        )


def _created_for(serp: dict, task: TaskRecord) -> bool:
    """Whether a retrieved scrape can be the one created for ``task``: the same target and
    priority, created (by the provider's clock) during the intent's day, after the intent was
    recorded and before the day closed for payment (``core.money``)."""
    created = parse_time(serp.get("created_at"))
    if created is None or not same_target(serp, task.target):
        return False
    if serp.get("priority", 1) != task.target.get("priority", 1):
        return False
    day_start = datetime.fromisoformat(task.partition_date).replace(tzinfo=UTC)
    since = max(day_start, datetime.fromisoformat(task.intent_at)) - CLOCK_MARGIN
    return since <= created <= day_start + DAY + SUBMIT_GRACE + CLOCK_MARGIN


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _meta(serp: dict, source: str, html: str | None = None) -> dict:
    """The raw table's columns for one retrieved SERP, but its body."""
    return {
        "fetched_at": utc_now().isoformat(),
        "status": serp.get("status"),
        "cost": as_number(serp.get("cost")),
        "source": source,
        "html": html,
    }


# -- collect ---------------------------------------------------------------------------------


def collect(
    client: SemScraperClient,
    ledger: Ledger,
    partition: str,
    *,
    deadline_seconds: float,
    poll_seconds: float,
    keep_html: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    scope: str = PROVIDER,
) -> CollectReport:
    """Retrieve every created scrape of ``partition`` that is done, until none is left or the
    deadline passes. Scrapes a callback delivered are already ``fetched`` and are skipped; a
    SERP that is not JSON is retried in later runs, then kept as ``undecodable``."""
    report = CollectReport()
    deadline = clock() + deadline_seconds
    set_aside: set[str] = set()  # undecodable this run: left to the next one

    def pending() -> set[str]:
        # Read again each time: a callback or another run may have collected some meanwhile.
        return {
            t.task_id for t in ledger.tasks(scope, partition, {TaskState.POSTED}) if t.task_id
        } - set_aside

    log.info(
        "%s: %d scrapes to collect, for up to %.0f s", partition, len(pending()), deadline_seconds
    )
    first = True
    while pending():
        listed = {e.get("id") for e in client.completed_not_retrieved()}
        # On the first pass, also ask by id: a crashed run may have retrieved some already.
        ready = sorted(pending() if first else pending() & listed)
        first = False
        _retrieve(client, ledger, partition, ready, keep_html, report, set_aside, scope)
        if not pending() or clock() + poll_seconds > deadline:
            break
        wait(
            poll_seconds,
            sleep,
            lambda: (
                f"{partition}: {len(pending())} scrapes not done yet, "
                f"{sum(report.ended.values())} collected this run, "
                f"{max(0.0, deadline - clock()):.0f} s to the deadline"
            ),
            log,
        )
    report.pending = len(ledger.tasks(scope, partition, {TaskState.POSTED}))
    return report


def _retrieve(
    client: SemScraperClient,
    ledger: Ledger,
    partition: str,
    ids: list[str],
    keep_html: bool,
    report: CollectReport,
    set_aside: set[str],
    scope: str,
) -> None:
    for start in range(0, len(ids), settings.MAX_IDS_PER_GET):
        chunk = ids[start : start + settings.MAX_IDS_PER_GET]
        try:
            answer = client.retrieve_answer(chunk)
            done = [
                (scrape_id, s)
                for s in answer.serps
                if (scrape_id := s.scrape_id) is not None
                and scrape_id in chunk
                and (s.serp is None or s.serp.get("status") == "done")
            ]
            pages = (
                {
                    p.get("id"): p.get("html")
                    for p in client.retrieve([scrape_id for scrape_id, _ in done], output="html")
                }
                if keep_html and done
                else {}
            )
        except SemScraperError as error:
            report.errors.append(f"retrieving {len(chunk)} scrapes: {error}")
            continue
        crash_point("semscraper.retrieved")
        envelope = answer.envelope.decode("utf-8", "replace")
        for scrape_id, retrieved in done:
            state = TaskState.FETCHED
            if retrieved.serp is None:
                set_aside.add(scrape_id)
                message = f"undecodable: {retrieved.error}"
                if ledger.note_attempt(scope, scrape_id, None, message) < MAX_ATTEMPTS:
                    continue
                state = TaskState.UNDECODABLE
            meta = {
                **_meta(retrieved.serp or {}, "api", pages.get(scrape_id)),
                "envelope": envelope,
                "repairs": list(retrieved.repairs),
            }
            ledger.store_response(
                scope,
                partition,
                scrape_id,
                TABLES.version(retrieved.body, meta),
                retrieved.body,
                state,
            )
            crash_point("semscraper.response_stored")
            report.ended[state.value] = report.ended.get(state.value, 0) + 1


# -- late results ----------------------------------------------------------------------------


def late_results(
    client: SemScraperClient, ledger: Ledger, scope: str = PROVIDER
) -> dict[str, list[str]]:
    """Partitions with results waiting, each with what says so: created scrapes that are done
    (in the completed-not-retrieved list), and SERPs callbacks delivered that are not yet
    published. Free calls only."""
    evidence: dict[str, set[str]] = {}
    done = {entry.get("id") for entry in client.completed_not_retrieved()}
    for task in ledger.tasks(scope, states={TaskState.POSTED}):
        if task.task_id in done:
            evidence.setdefault(task.partition_date, set()).add(f"done:{task.task_id}")
    for partition, count in ledger.inbox_partitions(scope).items():
        evidence.setdefault(partition, set()).add(f"delivered:{count}")
    return {partition: sorted(marks) for partition, marks in evidence.items()}
