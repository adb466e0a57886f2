"""A run whose steps may land on other hosts never runs on a private disk.

Dagster's in-process and multiprocess executors run a run's steps on the host that launched it,
and its default run launcher starts runs on the daemon's or webserver's host: one disk. Every
other executor (celery, docker, k8s, celery-k8s, ...) sends steps to workers or pods, and every
other run launcher (K8sRunLauncher, DockerRunLauncher, EcsRunLauncher, ...) starts each run
where the cluster puts it. There, a ledger in the data dir is one per host: a step on another
worker finds it empty and posts, and pays for, the day's tasks again; its Parquet parts are
invisible to the next step. So such a step refuses to start, before any call to a provider,
unless the state is in a shared database (``SERP_ETL_STATE_URL``) and the data on shared
storage (``SERP_ETL_STORAGE_URL``). ``SERP_ETL_DEPLOYMENT=multi-host`` says so where Dagster
cannot tell (several instances, say, sharing one provider account).
"""

from __future__ import annotations

import os

import dagster as dg

from serp_etl.defs.resources import WarehouseResource
from serp_etl.state.location import STATE_URL_ENV, state_url
from serp_etl.storage.location import STORAGE_URL_ENV, storage_url

DEPLOYMENT_ENV = "SERP_ETL_DEPLOYMENT"
MULTI_HOST = "multi-host"
LOCAL_EXECUTORS = frozenset(
    {
        dg.in_process_executor.name,
        dg.multiprocess_executor.name,
        dg.multi_or_in_process_executor.name,
        "execute_in_process_executor",
    }
)  # dg.materialize, tests
LOCAL_RUN_LAUNCHERS = frozenset({"DefaultRunLauncher", "SyncInMemoryRunLauncher"})


def private_disk_refusal(
    executor: str,
    run_launcher: str,
    deployment: str | None,
    shared_state: bool,
    shared_storage: bool,
) -> str | None:
    """Why a step must not run here (None: it may): its run may span hosts, and the state or
    the warehouse is on this host's disk."""
    spans = []
    if executor not in LOCAL_EXECUTORS:
        spans.append(f"the {executor!r} executor runs steps on other hosts")
    if run_launcher not in LOCAL_RUN_LAUNCHERS:
        spans.append(f"the {run_launcher} starts runs on other hosts")
    if deployment == MULTI_HOST:
        spans.append(f"{DEPLOYMENT_ENV}={MULTI_HOST}")
    missing = (
        [] if shared_state else [f"{STATE_URL_ENV} (a Postgres database for the ledger)"]
    ) + ([] if shared_storage else [f"{STORAGE_URL_ENV} (an s3:// bucket for the warehouse)"])
    if not spans or not missing:
        return None
    return (
        f"refused before any paid call: {'; '.join(spans)}, and each host would keep its "
        f"own {'ledger' if not shared_state else 'warehouse'} (a step on another host "
        f"would pay for the day's tasks again, or not see the parts of the steps before "
        f"it). Set {' and '.join(missing)}; or run with the in-process or multiprocess "
        f"executor and the default run launcher, on one host."
    )


def check_deployment(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> None:
    """Raise (not to be retried) if this step may run on a disk other steps do not see."""
    refusal = private_disk_refusal(
        executor=context.job_def.executor_def.name,
        run_launcher=type(context.instance.run_launcher).__name__,
        deployment=os.environ.get(DEPLOYMENT_ENV),
        shared_state=state_url() is not None,
        shared_storage=storage_url() is not None,
    )
    if refusal:
        raise dg.Failure(description=refusal, allow_retries=False)


def step_warehouse(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> WarehouseResource:
    """The run's warehouse resource, for a step that may run here (``check_deployment``)."""
    check_deployment(context)
    return context.resources.warehouse


# Every step of a run in the run's own process: a daily run's steps are a chain, and a process
# per step spent most of the run starting processes that each import the code location (13.2 s
# of a 16.4 s run; bench/run_bench.py). What isolation bought is kept otherwise: the ledger
# makes a crash at any point safe, flattening still forks its workers, and step retries still
# apply.
defs = dg.Definitions(executor=dg.in_process_executor)
