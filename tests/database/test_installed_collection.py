"""The collection as users get it: built, installed with ansible-galaxy, used from a project of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from psycopg import sql

from ansible_collections.phoenix.platform.tests.helpers import isolated_environ, repo_root

pytestmark = pytest.mark.slow

BIN = os.path.dirname(sys.executable)


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_installed_collection_runs_from_a_user_project_and_a_forced_reinstall_keeps_the_state(database, tmp_path):
    env = isolated_environ(HOME=str(tmp_path / "home"), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
                           ANSIBLE_NOCOLOR="1")

    def run(*command: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return done

    run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", repo_root(), "--output-path", str(tmp_path / "dist"))
    artifact = next((tmp_path / "dist").glob("phoenix-platform-*.tar.gz"))
    install = [os.path.join(BIN, "ansible-galaxy"), "collection", "install", str(artifact), "-p", str(tmp_path / "collections")]
    run(*install)
    installed = tmp_path / "collections" / "ansible_collections" / "phoenix" / "platform"
    shipped = {path.split("/")[0] for path in tree(installed)}
    assert {"plugins", "roles", "playbooks", "seeds"} <= shipped
    assert not shipped & {"tests", "bench", "Makefile", "extensions", "collections", ".ci", "ansible.cfg"}
    before = tree(installed)

    # A project of the user's own: its inventory (two environments in one group) and a playbook with FQCN modules.
    project = tmp_path / "project"
    project.mkdir()
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name + "_local")))
    local_url = database.url.replace("/%s?" % database.name, "/%s_local?" % database.name)
    hosts = {"phoenix-local": {"phoenix_stage": "LOCAL", "phoenix_db_url": local_url},
             "phoenix-beta": {"phoenix_stage": "BETA", "phoenix_db_url": database.url}}
    for host in hosts.values():
        host.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    (project / "inventory.yml").write_text(yaml.safe_dump({"phoenix": {"hosts": hosts}}))
    (project / "demo_world.yml").write_text(yaml.safe_dump([{
        "name": "A demo world in LOCAL", "hosts": "phoenix-local", "gather_facts": False,
        "tasks": [{"name": "World", "phoenix.platform.phoenix_world": {
            "db_url": "{{ phoenix_db_url }}", "stage": "{{ phoenix_stage }}", "id": "UC_DEMO",
            "seed": {"users": 2, "artifacts": 3, "chats": 1}}}]}]))

    playbook = os.path.join(BIN, "ansible-playbook")
    run(playbook, "phoenix.platform.site", "-i", "inventory.yml", cwd=project)
    run(playbook, "demo_world.yml", "-i", "inventory.yml", cwd=project)
    run(playbook, "phoenix.platform.backup", "-i", "inventory.yml", "-l", "phoenix-beta", cwd=project)
    health = run(playbook, "phoenix.platform.health", "-i", "inventory.yml", cwd=project)
    assert "BETA: healthy" in health.stdout and "LOCAL: healthy" in health.stdout
    check = run(playbook, "phoenix.platform.transfer", "-i", "inventory.yml", "-e", "source=local", "-e", "target=beta",
                "-e", json.dumps({"worlds": ["UC_DEMO"]}), "--check", cwd=project)
    assert "BETA from LOCAL: would insert " in " ".join(check.stdout.split())
    assert database.query('SELECT count(*) FROM "WorldMeta"') == [(0,)]  # --check wrote nothing
    report = run(playbook, "phoenix.platform.report", "-i", "inventory.yml", cwd=project)
    assert "Status page of LOCAL, BETA: " in report.stdout

    state = tmp_path / "home" / ".local" / "share" / "phoenix"
    backups = sorted(p.name for p in (state / "backups" / "BETA").glob("backup-BETA-*"))
    assert len(backups) == 1
    page = next((state / "reports").glob("phoenix_status_*.html")).read_text()  # under the state home, like backups
    assert 'id="environment-local"' in page and 'id="environment-beta"' in page
    assert tree(installed) == before  # nothing written inside the installed collection

    run(*install, "--force")
    assert sorted(p.name for p in (state / "backups" / "BETA").glob("backup-BETA-*")) == backups
    listed = run(os.path.join(BIN, "ansible"), "localhost", "-m", "phoenix.platform.phoenix_backup_info",
                 "-a", "dest=%s stage=BETA" % (state / "backups"), cwd=project)
    assert backups[0] in listed.stdout
