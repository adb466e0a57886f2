"""``serp-etl run``: the daily jobs of a day through Dagster's own API, and a closing summary.

Each job runs as Dagster runs it (``execute_job`` on the code location's job, the project's
instance: the run is in the UI's history and can be re-executed there), with Dagster's event
lines kept to warnings and errors; what the user reads at the end is one block per run: its
result, what it posted and what that cost, every check by name, the reports written.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from serp_etl.core.money import money
from serp_etl.core.wording import count
from serp_etl.my_sites.alerts import ALERTS_CHECK, ALERTS_TABLE
from serp_etl.providers.instances import provider_of

# Where each provider's submit step puts what it posted cost: (metadata key, currency, how
# sure: SemScraper bills on delivery, so a run knows its estimate only).
POSTED_COST = {
    "dataforseo": ("posted_cost_usd", "USD", ""),
    "semscraper": ("estimated_cost_eur", "EUR", "about "),
}


def daily_job(provider: str) -> dg.JobDefinition:
    """The code location's daily job of the provider instance ``provider`` (what
    ``execute_job`` reconstructs)."""
    from serp_etl.definitions import defs

    return defs.resolve_job_def(f"{provider}_daily")


def instances() -> list[str]:
    """The provider instances of the code location (each with its daily job), in name order."""
    from serp_etl.definitions import defs

    return sorted(
        name
        for job in defs.resolve_all_job_defs()
        if job.name.endswith("_daily") and provider_of(name := job.name.removesuffix("_daily"))
    )


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    severity: str
    description: str


@dataclass
class RunSummary:
    job: str
    day: str
    run_id: str
    status: str
    seconds: float
    posted: int | None = None
    posted_cost: str | None = None
    not_posted_because: str | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    alert_delivery: dict = field(default_factory=dict)  # the alerts step's delivery metadata

    @property
    def ok(self) -> bool:
        """The run succeeded and no check of ERROR severity failed."""
        return self.status == "SUCCESS" and not any(
            not c.passed and c.severity == "ERROR" for c in self.checks
        )

    def lines(self) -> list[str]:
        lines = [
            f"{self.job} {self.day}: {self.status} in {self.seconds:.1f} s (run {self.run_id[:8]})"
        ]
        if self.posted is not None:
            paid = f", {self.posted_cost}" if self.posted_cost else ""
            lines.append(
                f"  posted {count(self.posted, 'task')}{paid}"
                + (f" ({self.not_posted_because})" if self.not_posted_because else "")
            )
        # The alerts check fails to be seen in the UI; here it is news, not a failure.
        alerts = [c for c in self.checks if c.name == ALERTS_CHECK and not c.passed]
        failed = [c for c in self.checks if not c.passed and c not in alerts]
        passed = [c.name for c in self.checks if c.passed]
        lines.append(
            f"  checks: {len(passed)} passed"
            + (f" ({', '.join(sorted(set(passed)))})" if passed else "")
            + f", {len(failed)} failed"
        )
        lines += [f"    FAILED {c.name} ({c.severity}): {c.description}" for c in failed]
        for check in alerts:
            first, *more = (check.description or "alerts").splitlines()
            lines += [f"  my sites: {first}", *(f"    {line}" for line in more)]
        if self.alert_delivery:
            lines.append(
                "  alerts: "
                + ", ".join(
                    f"{key.removeprefix('alerts_').replace('_', ' ')} {value}"
                    for key, value in self.alert_delivery.items()
                )
            )
        lines += [f"  step failed: {failure}" for failure in self.failures]
        lines += [f"  report: {path}" for path in self.reports]
        return lines


def summarize(instance: dg.DagsterInstance, run_id: str, seconds: float) -> RunSummary:
    """What the run did, read from its events in the instance."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    provider = run.job_name.removesuffix("_daily")
    summary = RunSummary(
        job=run.job_name,
        day=run.tags.get("dagster/partition", ""),
        run_id=run_id,
        status=run.status.value,
        seconds=seconds,
    )
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type is dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            metadata = {k: v.value for k, v in materialization.metadata.items()}
            table = materialization.asset_key.path[-1]
            if table == "tasks":
                key, currency, about = POSTED_COST[provider_of(provider) or ""]
                posted, cost = metadata.get("posted_now"), metadata.get(key)
                why = metadata.get("not_posted_because")
                summary.posted = posted if isinstance(posted, int) else None
                if isinstance(cost, int | float):
                    summary.posted_cost = about + money(cost, currency)
                summary.not_posted_because = why if isinstance(why, str) else None
            if table == ALERTS_TABLE:
                summary.alert_delivery = {
                    k: v for k, v in metadata.items() if k.startswith("alerts_") and v
                }
            if table == "report" and isinstance(report := metadata.get("report"), str):
                summary.reports.append(report)
        elif event.event_type is dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            summary.checks.append(
                CheckOutcome(
                    evaluation.check_name,
                    evaluation.passed,
                    evaluation.severity.value,
                    evaluation.description or "",
                )
            )
        elif event.event_type is dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            summary.failures.append(
                f"{event.step_key}: {error.message.strip() if error else 'unknown error'}"
            )
    return summary


def run_day(instance: dg.DagsterInstance, day: str, providers: Sequence[str]) -> list[RunSummary]:
    """Run each provider instance's daily job for ``day``, one after the other; their
    summaries."""
    summaries = []
    with warnings.catch_warnings():
        # Dagster's beta and preview notes concern our definitions, not the user's run.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        for provider in providers:
            job = dg.build_reconstructable_job(__name__, daily_job.__name__, (provider,))
            started = time.monotonic()
            result = dg.execute_job(
                job,
                instance,
                tags={"dagster/partition": day},
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            summaries.append(summarize(instance, result.run_id, time.monotonic() - started))
    return summaries


def start_problem(day: str) -> str | None:
    """Why ``day`` cannot be run (before the partitions' start), or None."""
    from serp_etl.defs.partitions import START_DATE_ENV, daily_partitions

    if daily_partitions.has_partition_key(day):
        return None
    first, last = (
        daily_partitions.get_first_partition_key(),
        daily_partitions.get_last_partition_key(),
    )
    if day > (last or day):
        return f"{day} is after today's partition ({last}): nothing can be collected for it yet"
    return (
        f"{day} is before the partitions' start ({first}): set {START_DATE_ENV}={day} "
        "(or earlier) to make it a partition; the start otherwise is the first day the "
        "data dir holds"
    )
