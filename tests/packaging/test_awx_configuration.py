"""The AWX configuration: every task of playbooks/awx_configure.yml, rendered with awx/configuration.yml,
validates against the argument spec of the installed awx.awx module it calls. (No AWX server here: this
proves the arguments are well formed, not that a server accepts the objects.)"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.phoenix.platform.tests.helpers import load_yaml, repo_root

awx_api = pytest.importorskip("ansible_collections.awx.awx.plugins.module_utils.controller_api")
CHECKS = ("mutually_exclusive", "required_if", "required_one_of", "required_together", "required_by")


class Captured(Exception):
    pass


@functools.lru_cache(maxsize=None)
def awx_module_spec(name: str) -> tuple[dict, dict]:
    """The argument spec (with the controller's auth options) and checks an awx.awx module declares.

    Read in this process; the rendering, which needs Ansible's plugin loader, runs in another."""
    captured = {}

    def capture(self, argument_spec=None, **kwargs):
        captured.update(spec=dict(awx_api.ControllerModule.AUTH_ARGSPEC, **argument_spec), kwargs=kwargs)
        raise Captured

    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    original = awx_api.ControllerAPIModule.__init__
    awx_api.ControllerAPIModule.__init__ = capture
    try:
        with pytest.raises(Captured):
            module.main()
    finally:
        awx_api.ControllerAPIModule.__init__ = original
    return captured["spec"], {k: v for k, v in captured["kwargs"].items() if k in CHECKS}


def rendered_tasks() -> list[dict]:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render_awx_tasks.py")
    done = subprocess.run([sys.executable, script, repo_root()], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_every_task_validates_against_its_awx_module():
    tasks = rendered_tasks()
    for task in tasks:
        spec, checks = awx_module_spec(task["module"].rsplit(".", 1)[1])
        result = ArgumentSpecValidator(spec, **checks).validate(task["args"])
        assert result.error_messages == [], (task["task"], result.error_messages)
    assert {task["module"] for task in tasks} == {
        "awx.awx.organization", "awx.awx.execution_environment", "awx.awx.project", "awx.awx.credential_type",
        "awx.awx.credential", "awx.awx.inventory", "awx.awx.inventory_source", "awx.awx.job_template",
        "awx.awx.schedule"}
    schedules = [task["args"]["name"] for task in tasks if task["module"] == "awx.awx.schedule"]
    assert "Phoenix BETA nightly backup" in schedules and "Phoenix PROD hourly cleanup" in schedules
    credentials = [task["args"] for task in tasks if task["module"] == "awx.awx.credential"]
    database = [c for c in credentials if c["credential_type"] == "Phoenix database"]
    assert all(c["inputs"]["password"] == "s3cret" for c in database) and len(database) == 2
    identities = [c for c in credentials if c["credential_type"] == "Phoenix backup identity"]
    assert identities == [{"name": "Phoenix PROD backup identity", "organization": "Phoenix",
                           "credential_type": "Phoenix backup identity", "inputs": {"identity": "AGE-SECRET-KEY-1X"}}]
    # the identity goes only to PROD's job that reads backups
    given = {task["args"]["name"]: task["args"]["credentials"] for task in tasks
             if task["module"] == "awx.awx.job_template"}
    assert given["Phoenix PROD nightly restore drill"] == ["Phoenix PROD database", "Phoenix PROD backup identity"]
    assert [name for name, names in given.items() if "Phoenix PROD backup identity" in names] == [
        "Phoenix PROD nightly restore drill"]
    assert given["Phoenix BETA nightly restore drill"] == ["Phoenix BETA database"]


def test_a_misspelled_option_is_caught():
    spec, checks = awx_module_spec("job_template")
    result = ArgumentSpecValidator(spec, **checks).validate({"name": "x", "playbok": "playbooks/backup.yml"})
    assert any("playbok" in message for message in result.error_messages)


@pytest.mark.parametrize("credential_type, injected, secret", [
    ("phoenix_awx_credential_type", {"phoenix_db_host", "phoenix_db_port", "phoenix_db_user", "phoenix_db_password",
                                     "phoenix_db_name", "phoenix_db_sslmode"}, "password"),
    ("phoenix_awx_identity_credential_type", {"phoenix_backup_identity"}, "identity"),
])
def test_the_credential_types_inject_extra_vars_only(credential_type, injected, secret):
    configuration = load_yaml(os.path.join(repo_root(), "awx", "configuration.yml"))
    injectors = configuration[credential_type]["injectors"]
    assert set(injectors) == {"extra_vars"}  # env vars would land in ansible-runner's artifacts
    assert set(injectors["extra_vars"]) == injected
    fields = configuration[credential_type]["inputs"]["fields"]
    assert [field["id"] for field in fields if field.get("secret")] == [secret]  # AWX masks it
