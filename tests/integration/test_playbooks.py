"""End to end: the playbooks against an embedded cluster of their own (PHOENIX_HOME, PHOENIX_PG_PORT)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._local_cluster import LocalCluster
from ansible_collections.phoenix.platform.tests.helpers import free_port, repo_root

from conftest import make_base_dir

ALL = ["-i", "inventories/local", "-i", "inventories/beta", "-i", "inventories/prod"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phoenix_home():
    base = make_base_dir("phoenix-e2e-")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PHOENIX_") and k not in ("APP_STAGE", "DATABASE_URL")}
    env.update(PHOENIX_HOME=str(base / "home"), PHOENIX_PG_PORT=str(free_port()),
               ANSIBLE_CONFIG=os.path.join(repo_root(), "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    yield env
    cluster = LocalCluster(base / "home" / "postgres", int(env["PHOENIX_PG_PORT"]))
    if cluster.status() == "running":
        cluster.ensure_stopped()
    shutil.rmtree(base, ignore_errors=True)


def playbook(env, name, *args, extra_env=None):
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "playbooks/" + name, *args]
    return subprocess.run(command, cwd=repo_root(), env=dict(env, **(extra_env or {})),
                          capture_output=True, text=True, check=False)


def recap(output: str) -> dict[str, dict[str, int]]:
    rows = re.findall(r"^(\S+)\s+: (.*)$", output.split("PLAY RECAP")[-1], re.MULTILINE)
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", stats)} for host, stats in rows}


def test_site_then_status_then_idempotent_site(phoenix_home):
    first = playbook(phoenix_home, "site.yml", *ALL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "NOTICE: BETA has no database URL" in first.stdout
    assert "NOTICE: PROD has no database URL" in first.stdout
    assert "NOTICE: LOCAL" not in first.stdout
    assert all(stats["failed"] == 0 for stats in recap(first.stdout).values())

    status = playbook(phoenix_home, "env_status.yml", *ALL)
    assert status.returncode == 0, status.stdout
    lines = re.findall(r"'((?:LOCAL|BETA|PROD): [^']*)'", status.stdout)
    assert lines == ["LOCAL: healthy (0 worlds, 0 artifacts)", "BETA: healthy (0 worlds, 0 artifacts)",
                     "PROD: healthy (0 worlds, 0 artifacts)"]

    second = playbook(phoenix_home, "site.yml", *ALL)
    assert second.returncode == 0
    assert {host: stats["changed"] for host, stats in recap(second.stdout).items()} == {
        "phoenix-local": 0, "phoenix-beta": 0, "phoenix-prod": 0}


def test_inventory_pointed_at_prod_database_fails_before_writing(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/prod").returncode == 0
    prod_url = "postgresql://postgres@/phoenix_prod?host=%s/postgres/run&port=%s" % (
        phoenix_home["PHOENIX_HOME"], phoenix_home["PHOENIX_PG_PORT"])
    result = playbook(phoenix_home, "site.yml", "-i", "inventories/beta",
                      extra_env={"PHOENIX_BETA_DB_URL": prod_url})
    assert result.returncode != 0
    assert "registered as PROD but this run declares stage BETA" in result.stdout
    assert "NOTICE" not in result.stdout


def test_health_playbook_reports_a_stopped_database(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/beta").returncode == 0
    healthy = playbook(phoenix_home, "health.yml", "-i", "inventories/beta", "-e", "detail=true")
    assert healthy.returncode == 0
    assert "metrics:" in healthy.stdout and "status: healthy" in healthy.stdout
    stop = playbook(phoenix_home, "embedded.yml", "-i", "inventories/local", "-e", "local_postgres_state=stopped")
    assert stop.returncode == 0, stop.stdout
    down = playbook(phoenix_home, "health.yml", "-i", "inventories/beta")
    assert down.returncode != 0
    assert "BETA is unhealthy: database:" in down.stdout
    assert "No such file or directory" in down.stdout or "Connection refused" in down.stdout
    assert playbook(phoenix_home, "embedded.yml", "-i", "inventories/local").returncode == 0


def test_health_watch_repeats(phoenix_home):
    assert playbook(phoenix_home, "site.yml", "-i", "inventories/local").returncode == 0
    result = playbook(phoenix_home, "health.yml", "-i", "inventories/local", "-e", "watch=true",
                      "-e", "health_rounds=2", "-e", "phoenix_health_interval=1")
    assert result.returncode == 0, result.stdout
    assert len(re.findall(r"LOCAL round \d at", result.stdout)) == 2
