"""Submit and collect one partition of SemScraper scrapes. Dagster-free.

The money rules of the DataForSEO pipeline, adapted to an API with no tag field:

1. Every scrape gets a deterministic key (partition date + target) and an ``intent`` row in the
   ledger before it is created.
2. A key already ``posted`` (or ``rejected``) is never created again.
3. An ``intent`` left by an earlier run may have been created before a crash; its id is then
   unknown. It shows up in the completed-not-retrieved list once done, found by its target
   fields and a creation time after the intent. While the account has scrapes pending or
   processing, an unresolved intent is held, not created: only when nothing is in flight and
   the list does not hold it is it certain that it was never created.
4. Before creating anything, the estimated cost is checked against the credit and the budget.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from serp_etl.core.archive import ImportReport
from serp_etl.core.archive import import_archives as core_import
from serp_etl.core.flatten import as_number
from serp_etl.core.ledger import Ledger, TaskRecord, TaskState, utc_now
from serp_etl.core.locking import exclusive_lock
from serp_etl.core.money import closed_day_reason
from serp_etl.core.warehouse import Warehouse
from serp_etl.providers.semscraper import settings
from serp_etl.providers.semscraper.archive import read_responses
from serp_etl.providers.semscraper.client import (
    PostOutcomeUnknown,
    Scrape,
    SemScraperClient,
    SemScraperError,
)
from serp_etl.providers.semscraper.tables import TABLES

PROVIDER = settings.PROVIDER
TARGET_FIELDS = ("keyword", "device", "location", "language", "depth")
# The provider's clock against ours: a scrape created this long before its intent still counts.
CLOCK_MARGIN = timedelta(minutes=10)
log = logging.getLogger(__name__)


class BudgetExceeded(SemScraperError):
    """Creating the day's scrapes would cost more than the budget or the credit allows."""


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
    fetched: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def scrape_key(partition: str, scrape: Scrape) -> str:
    """The ledger's tag for a scrape: the same target on the same date is one scrape."""
    # Where results are delivered is configuration, not the target: not part of the key.
    target = {k: v for k, v in scrape.body().items() if k != "callback_url"}
    digest = hashlib.sha256(orjson.dumps(target, option=orjson.OPT_SORT_KEYS))
    return f"serp-etl/{PROVIDER}/{partition}/{digest.hexdigest()[:32]}"


def _same_target(listed: dict, target: dict) -> bool:
    return all(listed.get(name) == target.get(name, 1 if name == "depth" else None)
               for name in TARGET_FIELDS)


def submit(client: SemScraperClient, ledger: Ledger, partition: str, scrapes: list[Scrape], *,
           budget_eur: float | None = None, now: datetime | None = None) -> SubmitReport:
    """Create the day's scrapes, once. For a day that cannot be paid for (see ``core.money``),
    create nothing: only look up what a crash of that day may have created."""
    now = now or utc_now()
    report = SubmitReport(targets=len(scrapes))
    report.closed_reason = closed_day_reason(partition, now)
    with exclusive_lock(ledger.path.with_name(f"{PROVIDER}.submit.lock")):
        if report.closed_reason:
            leftovers = ledger.tasks(PROVIDER, partition, {TaskState.INTENT})
        else:
            wanted = {scrape_key(partition, s): s.body() for s in scrapes}
            report.already_posted, leftovers = ledger.start_submit(PROVIDER, partition, wanted)
        held = _recover(client, ledger, leftovers, report) if leftovers else set()
        to_post = [t for t in ledger.tasks(PROVIDER, partition, {TaskState.INTENT})
                   if t.tag not in held]
        report.held = len(held)
        if report.closed_reason:
            # Looked up and not found, nothing in flight: never created, and now never will be.
            ledger.mark_unposted(PROVIDER, [t.tag for t in to_post], report.closed_reason)
            return report
        if to_post:
            _check_budget(client, [Scrape(**t.target) for t in to_post], budget_eur, report)
        for start in range(0, len(to_post), settings.MAX_SCRAPES_PER_POST):
            batch = to_post[start:start + settings.MAX_SCRAPES_PER_POST]
            try:
                created, _ = client.create([Scrape(**t.target) for t in batch])
            except PostOutcomeUnknown as error:
                report.messages.append(f"{len(batch)} scrapes created with an unknown outcome "
                                       f"({error}); a rerun finds them before creating any")
                raise SubmitIncomplete("; ".join(report.messages)) from error
            if len(created) != len(batch):
                raise SubmitIncomplete(f"asked for {len(batch)} scrapes, the answer lists "
                                       f"{len(created)}: left as intents to be looked up")
            for task, scrape in zip(batch, created, strict=True):
                ledger.mark_posted(PROVIDER, task.tag, scrape["id"],
                                   as_number(scrape.get("cost")), None, scrape.get("status"))
                report.posted += 1
    return report


def _check_budget(client: SemScraperClient, scrapes: list[Scrape], budget_eur: float | None,
                  report: SubmitReport) -> None:
    estimate = round(sum(s.price() for s in scrapes), 8)
    balance = client.credit()
    report.estimated_cost_eur, report.balance_eur = estimate, balance
    if estimate > balance or (budget_eur is not None and estimate > budget_eur):
        limit = "" if budget_eur is None else f", budget {budget_eur} EUR"
        raise BudgetExceeded(f"creating {len(scrapes)} scrapes would cost about {estimate} EUR; "
                             f"credit {balance} EUR{limit}: nothing was created")


def _recover(client: SemScraperClient, ledger: Ledger, leftovers: list[TaskRecord],
             report: SubmitReport) -> set[str]:
    """Find intents of earlier runs among the completed, not retrieved scrapes.

    Found ones become ``posted``. Returns the keys that must not be created now.
    """
    listed = client.completed_not_retrieved()
    taken: set[str] = set()
    unresolved = []
    for task in leftovers:
        match = _find(client, listed, task, taken)
        if match is None:
            unresolved.append(task)
            continue
        taken.add(match["id"])
        ledger.mark_posted(PROVIDER, task.tag, match["id"], as_number(match.get("cost")), None,
                           "done (recovered by target)")
        report.recovered += 1
        log.info("recovered scrape %s for %s instead of creating it again", match["id"],
                 task.tag)
    if not unresolved:
        return set()
    in_flight = sum(entry.get("count", 0) for entry in client.status()
                    if entry.get("status") in ("pending", "processing"))
    if in_flight:
        report.messages.append(f"{len(unresolved)} scrapes of an interrupted run are not found "
                               f"yet and {in_flight} scrapes are in flight: held until they "
                               "finish, so that none is created twice")
        return {t.tag for t in unresolved}
    return set()  # nothing in flight and not listed: they were never created


def _find(client: SemScraperClient, listed: list[dict], task: TaskRecord,
          taken: set[str]) -> dict | None:
    candidates = [e for e in listed if e.get("id") not in taken and _same_target(e, task.target)]
    if not candidates:
        return None
    since = datetime.fromisoformat(task.intent_at) - CLOCK_MARGIN
    for start in range(0, len(candidates), settings.MAX_IDS_PER_GET):
        # The list omits created_at: retrieving by id shows it (free, and marks it fetched,
        # which is right: it is ours and is collected below).
        ids = [c["id"] for c in candidates[start:start + settings.MAX_IDS_PER_GET]]
        for serp in client.retrieve(ids):
            created = serp.get("created_at")
            if isinstance(created, str) and _parse_time(created) >= since:
                return serp
    return None


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


# -- collect ---------------------------------------------------------------------------------

def collect(client: SemScraperClient, ledger: Ledger, partition: str, *,
            deadline_seconds: float, poll_seconds: float, keep_html: bool = False,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> CollectReport:
    """Retrieve every created scrape of ``partition`` that is done, until none is left or the
    deadline passes. Scrapes a callback delivered are already ``fetched`` and are skipped."""
    report = CollectReport()
    deadline = clock() + deadline_seconds
    pending = {t.task_id: t for t in ledger.tasks(PROVIDER, partition, {TaskState.POSTED})}
    first = True
    while pending:
        listed = {e.get("id") for e in client.completed_not_retrieved()}
        # On the first pass, also ask by id: a crashed run may have retrieved some already.
        ready = list(pending) if first else [i for i in pending if i in listed]
        first = False
        _retrieve(client, ledger, partition, ready, pending, keep_html, report)
        if not pending or clock() + poll_seconds > deadline:
            break
        sleep(poll_seconds)
    report.pending = len(pending)
    return report


def _retrieve(client: SemScraperClient, ledger: Ledger, partition: str, ids: list[str],
              pending: dict[str, TaskRecord], keep_html: bool, report: CollectReport) -> None:
    for start in range(0, len(ids), settings.MAX_IDS_PER_GET):
        chunk = ids[start:start + settings.MAX_IDS_PER_GET]
        try:
            serps = [s for s in client.retrieve(chunk) if s.get("status") == "done"]
            pages = {p.get("id"): p.get("html") for p in client.retrieve(
                [s["id"] for s in serps], output="html")} if keep_html and serps else {}
        except SemScraperError as error:
            report.errors.append(f"retrieving {len(chunk)} scrapes: {error}")
            continue
        for serp in serps:
            if serp.get("id") not in pending:
                continue
            meta = {"fetched_at": utc_now().isoformat(), "status": serp.get("status"),
                    "cost": as_number(serp.get("cost")), "source": "api",
                    "html": pages.get(serp["id"])}
            ledger.store_response(PROVIDER, partition, serp["id"], meta, orjson.dumps(serp),
                                  TaskState.FETCHED)
            pending.pop(serp["id"])
            report.fetched += 1


# -- import ----------------------------------------------------------------------------------

def import_archives(paths: list[Path], partition: str, ledger: Ledger, warehouse: Warehouse,
                    workers: int = 1) -> ImportReport:
    """Load saved retrieve-by-ids responses into the raw and flattened tables of ``partition``."""
    return core_import(TABLES, read_responses, paths, partition, ledger, warehouse, workers)
