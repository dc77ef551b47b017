"""The environment role's connection defaults, rendered by Ansible itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from psycopg.conninfo import conninfo_to_dict

from ansible_collections.phoenix.platform.tests.helpers import repo_root

HOSTILE = {"phoenix_db_user": "app/user", "phoenix_db_password": "p@ss:/w?rd#&= %'\"\\", "phoenix_db_name": "phoenix beta"}


def rendered(tmp_path, **variables) -> dict:
    playbook = tmp_path / "show.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "roles": ["phoenix.platform.environment"],
        "tasks": [{"ansible.builtin.copy": {"dest": str(tmp_path / "out.json"), "mode": "0600",
                                            "content": "{{ {'url': phoenix_db_url, 'embedded': phoenix_uses_embedded} | to_json }}"}}],
    }]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(repo_root(), "collections"), PHOENIX_HOME=str(tmp_path))
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook),
                           "-e", json.dumps(dict(variables, phoenix_stage="BETA"))],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    return json.loads((tmp_path / "out.json").read_text())


def test_credential_parts_make_a_url_libpq_reads_back(tmp_path):
    result = rendered(tmp_path, phoenix_db_host="db.example.com", phoenix_db_port="6432", **HOSTILE)
    parsed = conninfo_to_dict(result["url"])
    assert (parsed["user"], parsed["password"], parsed["dbname"]) == (
        HOSTILE["phoenix_db_user"], HOSTILE["phoenix_db_password"], HOSTILE["phoenix_db_name"])
    assert (parsed["host"], parsed["port"], parsed["sslmode"]) == ("db.example.com", "6432", "prefer")
    assert result["embedded"] is False


def test_a_given_url_wins_and_nothing_means_the_embedded_database(tmp_path):
    given = "postgresql://me@db.example.com/app"
    assert rendered(tmp_path, phoenix_db_url=given, phoenix_db_host="ignored", **HOSTILE)["url"] == given
    embedded = rendered(tmp_path)
    assert embedded["embedded"] is True
    assert conninfo_to_dict(embedded["url"])["host"] == str(tmp_path / "postgres" / "run")
