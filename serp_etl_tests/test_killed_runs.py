"""A run killed in the middle of a provider step never blocks the next run of that provider."""

from __future__ import annotations

import multiprocessing
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from serp_etl.instance_home import prepare_home
from serp_etl.sandbox.dataforseo.app import LOGIN, PASSWORD, DataForSEOSandbox
from serp_etl.sandbox.wsgi import serving
from serp_etl.state.ledger import Ledger
from serp_etl_tests.conftest import EXAMPLE_TARGETS, TODAY


class HoldFirstPost:
    """The sandbox, but the first task_post is held (its run is killed meanwhile) and then
    answered 503 without reaching the sandbox: nothing is billed for it."""

    def __init__(self, app) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"].endswith("/task_post") and not self.arrived.is_set():
            self.arrived.set()
            self.release.wait(120)
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"held"]
        return self.app(environ, start_response)


def materialize(env: dict, selection: str, config: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "serp_etl.definitions",
            "--select",
            selection,
            "--partition",
            TODAY,
            "-c",
            str(config),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@dataclass
class HeldRun:
    """A project instance and data dir whose first run holds in its first task_post."""

    sandbox: DataForSEOSandbox
    held: HoldFirstPost
    env: dict
    config: Path

    def start(self, selection: str, **kwargs) -> subprocess.Popen:
        return materialize(self.env, selection, self.config, **kwargs)

    def finish(self, selection: str) -> str:
        """Run ``selection`` to its end (or fail the test after 240 s); its output."""
        run = self.start(selection)
        try:
            output, _ = run.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            run.kill()
            pytest.fail("the next run did not finish: " + run.communicate()[0][-2000:])
        assert run.returncode == 0, output[-3000:]
        return output


def live_project(tmp_path: Path, url: str, deadline: float) -> tuple[dict, Path]:
    """A project instance and data dir whose runs call the API at ``url`` as a live one, and
    wait ``deadline`` seconds for results: the runs' environment and run config."""
    home, data = tmp_path / "dagster", tmp_path / "data"
    prepare_home(home)
    data.mkdir()
    shutil.copy(EXAMPLE_TARGETS, data / "targets.toml")
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "resources": {
                    "dataforseo": {
                        "config": {
                            "base_url": url,
                            "collect_deadline_seconds": deadline,
                            "poll_seconds": 1,
                        }
                    }
                }
            }
        )
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SERP_ETL_DATA_DIR": str(data),
        "SERP_ETL_MODE": "live",
        "DATAFORSEO_LOGIN": LOGIN,
        "DATAFORSEO_PASSWORD": PASSWORD,
    }, config


@pytest.fixture
def held_run(tmp_path):
    sandbox = DataForSEOSandbox(tmp_path / "sandbox.sqlite", ready_seconds=0)
    held = HoldFirstPost(sandbox.app)
    with serving(held) as url:
        env, config = live_project(tmp_path, url, deadline=10)
        try:
            yield HeldRun(sandbox, held, env, config)
        finally:
            held.release.set()


@pytest.mark.slow
def test_a_run_killed_while_posting_never_blocks_the_next(held_run):
    first = held_run.start("dataforseo/tasks", start_new_session=True)
    assert held_run.held.arrived.wait(180), first.communicate()[0]
    os.killpg(first.pid, signal.SIGKILL)  # the run and its step process, at once
    first.wait(30)
    held_run.held.release.set()
    output = held_run.finish("dataforseo/tasks,dataforseo/responses")
    assert "blocked by limit for pool" not in output
    assert held_run.sandbox.stats()["billed_tasks"] == 6  # the held post was never billed


def _hold_until_killed(location, name: str, held) -> None:
    with Ledger(location) as ledger, ledger.lock(name):
        held.set()
        threading.Event().wait()  # until SIGKILLed


def test_a_lock_whose_holder_is_killed_is_free_at_once(state_location):
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    holder = context.Process(
        target=_hold_until_killed, args=(state_location, "dataforseo.collect", held)
    )
    holder.start()
    assert held.wait(60)
    waited = []
    with Ledger(state_location) as ledger:
        # Held: a second taker is told it waits (and does not take it).
        assert _try(ledger, "dataforseo.collect") is False
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
        assert holder.exitcode == -signal.SIGKILL
        with ledger.lock("dataforseo.collect", on_wait=lambda: waited.append(True)):
            pass
    assert waited == []  # free the moment its holder died


class _Waits(Exception):
    pass


def _try(ledger: Ledger, name: str) -> bool:
    """Whether ``name`` could be taken without waiting."""

    def refuse_to_wait():
        raise _Waits

    try:
        with ledger.lock(name, on_wait=refuse_to_wait):
            return True
    except _Waits:
        return False


def alive_in_group(pgid: int) -> dict[int, str]:
    """The processes of group ``pgid`` that have not exited: pid -> command line."""
    alive = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(
                b"\0", b" "
            ).decode() or f"[{(entry / 'comm').read_text().strip()}, exiting]"
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive[int(entry.name)] = command
    return alive


def left_after(pgid: int, seconds: float) -> dict[int, str]:
    """The processes of group ``pgid`` still alive ``seconds`` after this call: each waited
    for through a pidfd (woken by its exit, not by a clock)."""
    left = {}
    for pid, command in alive_in_group(pgid).items():
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([handle], [], [], seconds)[0]:
                left[pid] = command
        finally:
            os.close(handle)
    return left


@pytest.mark.slow
def test_a_terminated_run_leaves_no_process_and_never_blocks_the_next(held_run):
    """What the UI's terminate sends: SIGTERM to the run's process, during the paid step."""
    first = held_run.start("dataforseo/tasks", start_new_session=True)
    assert held_run.held.arrived.wait(180), first.communicate()[0]
    assert len(alive_in_group(first.pid)) > 1  # the run, its step process, ...
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    held_run.held.release.set()
    # Every process of the run ends with it (one may still be finishing its exit).
    assert left_after(first.pid, 5) == {}
    held_run.finish("dataforseo/tasks")
    assert held_run.sandbox.stats()["billed_tasks"] == 6


@pytest.mark.slow
def test_a_run_interrupted_while_collecting_ends_at_once_and_is_not_retried(tmp_path):
    """Ctrl-C (of dagster dev, or of a run in a terminal) while a free step waits for results:
    the step's RetryPolicy must not turn it into a retry 20 s later, holding the run (and
    dagster dev, which waits for its runs) alive."""
    sandbox = DataForSEOSandbox(tmp_path / "sandbox.sqlite", ready_seconds=3600)
    with serving(sandbox.app) as url:
        env, config = live_project(tmp_path, url, deadline=600)
        run = materialize(
            env, "dataforseo/tasks,dataforseo/responses", config, start_new_session=True
        )
        output = []
        for line in run.stdout:  # until the collection waits for its tasks
            output.append(line)
            if "not ready yet" in line:
                break
        else:
            pytest.fail("".join(output)[-3000:])
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
        assert left_after(run.pid, 10) == {}
        output.append(run.communicate(timeout=10)[0])
    text = "".join(output)
    assert "requested a retry" not in text
    assert "interrupted" in text
