"""The project's Dagster home (data/dagster): made with Dagster's own storage config before its
config appears, so simultaneous first starts leave one alembic head; homes an earlier serp-etl
made are upgraded with their runs; one step at a time calls each provider, across runs."""

from __future__ import annotations

import ast
import multiprocessing
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
import yaml

from serp_etl import definitions
from serp_etl.cli import main
from serp_etl.instance_home import INSTANCE_CONFIG, InstanceHomeError, prepare_home

PACKAGE = Path(definitions.__file__).parent
ALEMBIC_DBS = ["history/runs.db", "history/runs/index.db", "schedules/schedules.db"]
# What serp-etl's dagster.yaml named before: its own subclass of Dagster's private storage.
FORMER_STORAGE = """storage:
  custom:
    module: serp_etl.dagster_instance
    class: SerializedInitSqliteStorage
    config: {}
"""


def heads(home: Path) -> list[int]:
    counts = []
    for db in ALEMBIC_DBS:
        with sqlite3.connect(home / db) as connection:
            counts.append(connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0])
    return counts


def run_ids(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [run.run_id for run in instance.get_runs()]


@dg.asset
def tiny() -> int:
    return 1


def test_the_instance_uses_only_dagster_s_public_config_and_api():
    assert "custom" not in str(yaml.safe_load(INSTANCE_CONFIG.read_text()))
    private = []
    for module in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            private += [f"{module.name}: {name}" for name in names if name.startswith("dagster._")]
    assert private == []


def test_the_storage_is_made_before_the_config_appears(tmp_path, monkeypatch):
    home = tmp_path / "dagster"
    seen = []
    make = dg.DagsterInstance.from_config

    def spy(config_dir, *args, **kwargs):
        # Made apart: the home has neither its config nor a storage folder meanwhile.
        seen.append(sorted(p.name for p in home.iterdir() if not p.name.startswith(".")))
        return make(config_dir, *args, **kwargs)

    monkeypatch.setattr(dg.DagsterInstance, "from_config", spy)
    home.mkdir()
    (home / ".staging-left-by-a-killed-init").mkdir()
    assert prepare_home(home) == [f"{home / 'dagster.yaml'}: written from the example"]
    assert seen == [[]]
    assert not list(home.glob(".staging-*"))
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == [
        "dagster.yaml",
        "history",
        "schedules",
    ]
    assert (home / "dagster.yaml").read_text() == INSTANCE_CONFIG.read_text()
    assert heads(home) == [1, 1, 1]
    assert prepare_home(home) == [f"{home / 'dagster.yaml'}: kept (it is yours)"]


def _init_then_open(home: str, barrier) -> None:
    barrier.wait()
    prepare_home(Path(home))
    run_ids(Path(home))


def _open(home: str, barrier) -> None:
    barrier.wait()
    run_ids(Path(home))


def three_at_once(start, home: Path) -> list[int | None]:
    """The exit codes of three processes running ``start`` on ``home`` at the same moment."""
    fork = multiprocessing.get_context("fork")
    barrier = fork.Barrier(3)
    processes = [fork.Process(target=start, args=(str(home), barrier)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    return [process.exitcode for process in processes]


@pytest.mark.slow
def test_simultaneous_first_starts_leave_one_alembic_head(tmp_path):
    for attempt in range(3):
        # Three first runs at once (each makes the home first, as `serp-etl run` does).
        home = tmp_path / f"home{attempt}"
        assert three_at_once(_init_then_open, home) == [0, 0, 0]
        assert heads(home) == [1, 1, 1], attempt
        # Then three Dagster processes at once (`dagster dev`, a run, a step) on that home.
        assert three_at_once(_open, home) == [0, 0, 0]
        assert heads(home) == [1, 1, 1], attempt


def test_a_hand_copied_config_gets_its_storage_from_init(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_CONFIG.read_text())
    assert prepare_home(home) == [f"{home / 'dagster.yaml'}: kept (it is yours)"]
    assert heads(home) == [1, 1, 1]
    # A config that chooses another storage is left without SQLite files.
    other = tmp_path / "other"
    other.mkdir()
    (other / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: x\n")
    assert prepare_home(other, write_config=False) == [
        f"{other / 'dagster.yaml'}: kept (it is yours)"
    ]
    assert sorted(p.name for p in other.iterdir()) == [".init.lock", "dagster.yaml"]
    assert prepare_home(tmp_path / "none", write_config=False) == []
    assert not (tmp_path / "none").exists()


def former_home(home: Path, config: str) -> str:
    """A home as an earlier serp-etl left it (storage under storage/, its config naming
    serp_etl.dagster_instance) holding one run; that run's id."""
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home / 'storage'}\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([tiny], instance=instance)
    assert (home / "storage" / "history" / "runs.db").exists()
    assert not (home / "history").exists()
    (home / "dagster.yaml").write_text(config)
    return result.run_id


def test_a_home_an_earlier_serp_etl_made_is_upgraded_with_its_runs(tmp_path, monkeypatch):
    home = tmp_path / "data" / "dagster"
    run_id = former_home(home, FORMER_STORAGE + INSTANCE_CONFIG.read_text())
    # Before the upgrade Dagster stops on the former class, saying what to run.
    with pytest.raises(ImportError, match="run `serp-etl init` once"):
        dg.DagsterInstance.from_config(str(home))

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert main(["--data-dir", str(tmp_path / "data"), "init"]) == 0
    config = home / "dagster.yaml"
    assert config.read_text() == INSTANCE_CONFIG.read_text()
    assert run_ids(home) == [run_id]
    # Linked, relatively, not moved: a `dagster dev` still on the former config writes to the
    # same files, and a moved data dir keeps its history.
    for name in ("history", "schedules"):
        assert (home / name).readlink() == Path("storage") / name
    moved = tmp_path / "moved"
    (tmp_path / "data").rename(moved)
    assert run_ids(moved / "dagster") == [run_id]
    assert prepare_home(moved / "dagster") == [
        f"{moved / 'dagster' / 'dagster.yaml'}: kept (it is yours)"
    ]


def test_an_edited_former_config_keeps_its_own_settings(tmp_path, monkeypatch):
    home = tmp_path / "mine"
    edited = FORMER_STORAGE + "telemetry:\n  enabled: true\nrun_monitoring:\n  enabled: true\n"
    run_id = former_home(home, edited)
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # a home of the user's, outside the data dir
    assert main(["--data-dir", str(tmp_path / "data"), "init"]) == 0
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == {
        "telemetry": {"enabled": True},
        "run_monitoring": {"enabled": True},
    }
    assert run_ids(home) == [run_id]


def test_a_home_with_both_layouts_is_refused_untouched(tmp_path, capsys, monkeypatch):
    home = tmp_path / "dagster"
    former = FORMER_STORAGE + INSTANCE_CONFIG.read_text()
    former_home(home, former)
    (home / "history").mkdir()
    with pytest.raises(InstanceHomeError, match="move one of them away"):
        prepare_home(home)
    assert (home / "dagster.yaml").read_text() == former
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert main(["--data-dir", str(tmp_path / "data"), "init"]) == 2
    assert "move one of them away" in capsys.readouterr().err


def test_a_former_storage_kept_elsewhere_is_linked_where_it_is(tmp_path):
    home, elsewhere = tmp_path / "dagster", tmp_path / "elsewhere"
    run_id = former_home(home, "")
    (home / "storage").rename(elsewhere)
    config = FORMER_STORAGE.replace("config: {}", f"config:\n      base_dir: {elsewhere}")
    (home / "dagster.yaml").write_text(config)
    prepare_home(home)
    assert (home / "history").readlink() == elsewhere / "history"
    assert run_ids(home) == [run_id]
    # A relative one was read against some process's working directory: not guessed.
    other = tmp_path / "other"
    former_home(other, FORMER_STORAGE.replace("config: {}", "config:\n      base_dir: rel"))
    with pytest.raises(InstanceHomeError, match="not an absolute path"):
        prepare_home(other)


def test_a_config_that_is_not_yaml_is_named(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage: [\n")
    with pytest.raises(InstanceHomeError, match="dagster.yaml is not YAML"):
        prepare_home(home)
    (home / "dagster.yaml").write_text("- a list\n")
    with pytest.raises(InstanceHomeError, match="not a mapping"):
        prepare_home(home)


def test_no_step_waits_for_a_dagster_pool(tmp_path):
    """A pool slot outlives a killed run (freed only by the daemon): none is used."""
    graph = definitions.defs.resolve_asset_graph()
    assert all(not graph.get(key).pools for key in graph.get_all_asset_keys())
    prepare_home(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit is None
