"""The deployment recipe (deploy/): the user-code image and the Helm chart's values say what a
shared deployment needs, and what serp-etl reads. No cluster runs here: the files are loaded and
checked against the code and the package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from serp_etl.defs.deployment import DEPLOYMENT_ENV, MULTI_HOST, private_disk_refusal
from serp_etl.defs.partitions import START_DATE_ENV
from serp_etl.state.location import STATE_URL_ENV
from serp_etl.storage.location import STORAGE_URL_ENV

REPOSITORY = Path(__file__).parent.parent
DEPLOY = REPOSITORY / "deploy"


def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def user_code() -> dict:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def settings() -> dict[str, str]:
    """What a run pod's environment holds: the values' variables and the secret's keys."""
    secret = yaml.safe_load((DEPLOY / "helm" / "secret.example.yaml").read_text())
    assert [s["name"] for s in user_code()["envSecrets"]] == [secret["metadata"]["name"]]
    return {**{e["name"]: e["value"] for e in user_code()["env"]}, **secret["stringData"]}


def test_the_values_run_each_run_in_a_pod_with_state_and_storage_shared():
    assert values()["runLauncher"]["type"] == "K8sRunLauncher"
    assert user_code()["includeConfigInLaunchedRuns"]["enabled"]  # run pods get the settings
    env = settings()
    assert env[STORAGE_URL_ENV].startswith("s3://")
    assert env[STATE_URL_ENV].startswith("postgresql+psycopg://")
    assert env[DEPLOYMENT_ENV] == MULTI_HOST and START_DATE_ENV in env
    # What a step checks before any paid call, with these settings: it may run.
    assert (
        private_disk_refusal(
            "multi_or_in_process_executor",
            "K8sRunLauncher",
            env[DEPLOYMENT_ENV],
            shared_state=True,
            shared_storage=True,
        )
        is None
    )
    # Without the bucket, the same pods are refused.
    assert private_disk_refusal(
        "multi_or_in_process_executor",
        "K8sRunLauncher",
        env[DEPLOYMENT_ENV],
        shared_state=True,
        shared_storage=False,
    )


def test_the_values_keep_dagster_s_instance_out_of_the_known_traps():
    postgres = values()["postgresql"]
    assert postgres["postgresqlScheme"] == "postgresql+psycopg2"  # NOTIFY with psycopg 3
    assert values()["computeLogManager"]["type"] == "S3ComputeLogManager"
    assert values()["dagsterDaemon"]["runMonitoring"]["enabled"]
    assert values()["migrate"]["enabled"]  # the schema before two processes race for it
    mounts = {m["mountPath"] for m in user_code()["volumeMounts"]}
    assert "/opt/serp-etl/data/targets.toml" in mounts


def test_the_image_serves_the_code_location_the_values_name():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert '".[deploy]"' in dockerfile
    assert "serp_etl.definitions" in dockerfile
    assert user_code()["dagsterApiGrpcArgs"] == ["--module-name", "serp_etl.definitions"]
    data_dir = re.search(r"SERP_ETL_DATA_DIR=(\S+)", dockerfile).group(1)
    assert any(m["mountPath"].startswith(data_dir) for m in user_code()["volumeMounts"])


def test_the_deploy_extra_pins_dagster_s_libraries_to_the_dagster_it_pins():
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    (core,) = [d for d in project["dependencies"] if d.startswith("dagster==")]
    minor = int(core.split("==")[1].split(".")[1])
    patch = core.split("==")[1].split(".")[2]
    deploy = project["optional-dependencies"]["deploy"]
    libraries = [
        d
        for extra in ("deploy", "postgres")
        for d in project["optional-dependencies"][extra]
        if d.startswith("dagster-")
    ]
    assert {name.split("==")[0] for name in libraries} >= {
        "dagster-k8s",
        "dagster-celery",
        "dagster-postgres",
        "dagster-aws",
    }
    # Integration libraries 0.<minor + 16>.<patch> go with dagster 1.<minor>.<patch>.
    assert {name.split("==")[1] for name in libraries} == {f"0.{minor + 16}.{patch}"}
    assert "serp-etl[postgres,s3]" in deploy
