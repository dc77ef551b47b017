"""As AWX runs jobs: ansible-runner with a private data directory, the project a fresh clone of this
repository (no make, no generated link), the database credential injected as extra vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pyrage
import pytest
import yaml

from ansible_collections.phoenix.platform.tests.helpers import isolated_environ, load_yaml, repo_root

pytestmark = pytest.mark.slow


def runner(private: Path, playbook: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-runner"), "run", str(private), "-p", playbook]
    return subprocess.run(command, cwd="/", env=isolated_environ(**extra_env), capture_output=True, text=True, check=False)


def job_events(private: Path) -> list[dict]:
    latest = max((private / "artifacts").iterdir(), key=lambda p: p.stat().st_mtime)
    events = [json.loads(p.read_text()) for p in (latest / "job_events").glob("*.json")]
    return sorted(events, key=lambda e: e["counter"])


def every_file(root: Path):
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def injected(credential_type: dict, inputs: dict[str, str]) -> dict[str, str]:
    """The extra vars AWX renders from a credential type's injectors and a credential's inputs."""
    return {str(name): jinja2.Template(str(value)).render(inputs)
            for name, value in credential_type["injectors"]["extra_vars"].items()}


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_fresh_clone_runs_as_an_awx_project_and_no_artifact_holds_the_secret(database, tmp_path, encrypted):
    private = tmp_path / "job"
    subprocess.run(["git", "clone", "--quiet", repo_root(), str(private / "project")], check=True)
    home = tmp_path / "state"  # in AWX: a persistent volume
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "phoenix_stage": "BETA"}
    # What the credential types (awx/configuration.yml) inject: extra vars, not environment variables, which
    # ansible-runner records in artifacts/<id>/command.
    configuration = load_yaml(os.path.join(repo_root(), "awx", "configuration.yml"))
    extra_vars = injected(configuration["phoenix_awx_credential_type"], {
        "host": "127.0.0.1", "port": str(database.cluster.port), "username": "postgres",
        "password": database.password, "database": database.name, "sslmode": "disable"})
    assert extra_vars["phoenix_db_password"] == database.password
    secrets = [database.password]
    if encrypted:  # the recipient in the inventory, the identity from its credential
        identity = pyrage.x25519.Identity.generate()
        host["phoenix_backup_encrypt_to"] = [str(identity.to_public())]
        extra_vars.update(injected(configuration["phoenix_awx_identity_credential_type"], {"identity": str(identity)}))
        assert extra_vars["phoenix_backup_identity"] == str(identity)
        secrets.append(str(identity))
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"phoenix": {"hosts": {"phoenix-beta": host}}}))
    (private / "env").mkdir()
    (private / "env" / "extravars").write_text(yaml.safe_dump(extra_vars))

    drilled = None
    for playbook in ("playbooks/site.yml", "playbooks/backup.yml", "playbooks/restore_drill.yml", "playbooks/health.yml"):
        job = runner(private, playbook, {"PHOENIX_HOME": str(home)})
        assert job.returncode == 0, job.stdout[-3000:]
        events = job_events(private)
        assert events[-1]["event"] == "playbook_on_stats" and not events[-1]["event_data"].get("failures")
        last_ok = [e for e in events if e["event"] == "runner_on_ok"][-1]
        assert last_ok["event_data"]["task"] == "Summary"
        summary = last_ok["event_data"]["res"]["msg"]
        assert summary.startswith("BETA: "), summary
        drilled = next((e["event_data"]["res"] for e in events if e["event"] == "runner_on_ok" and e["event_data"][
            "task"] == "Backup restores into a scratch database and passes its checks"), None) or drilled
    assert "BETA: healthy" in summary
    backups = list((home / "backups" / "BETA").glob("backup-BETA-*"))
    assert len(backups) == 1 and (backups[0] / "manifest.json").is_file()
    dumps = [p.name for p in backups[0].iterdir() if p.name != "manifest.json"]
    assert dumps and all(name.endswith(".age") for name in dumps) is encrypted, dumps
    assert drilled["backup"]["id"] == backups[0].name and drilled["passed"] is True  # read back, decrypted or not

    leaks = [str(p) for p in every_file(private / "artifacts") + every_file(home)
             for secret in secrets if secret.encode() in p.read_bytes()]
    assert leaks == []
    assert not (private / "project" / ".phoenix").exists()  # nothing in the per-job project copy
