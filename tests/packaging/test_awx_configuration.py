"""The AWX configuration: every task of playbooks/awx_configure.yml, rendered with awx/configuration.yml,
validates against the argument spec of the installed awx.awx module it calls. (No AWX server here: this
proves the arguments are well formed, not that a server accepts the objects.)"""

from __future__ import annotations

import functools
import importlib
import os

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar

from ansible_collections.phoenix.platform.tests.helpers import repo_root

awx_api = pytest.importorskip("ansible_collections.awx.awx.plugins.module_utils.controller_api")
CHECKS = ("mutually_exclusive", "required_if", "required_one_of", "required_together", "required_by")


class Captured(Exception):
    pass


@functools.lru_cache(maxsize=None)
def awx_module_spec(name: str) -> tuple[dict, dict]:
    """The argument spec (with the controller's auth options) and checks an awx.awx module declares.

    Read before Ansible's plugin loader takes over imports, which the task rendering below needs."""
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


def load(path: str):
    """As ansible-playbook loads a playbook or ``-e @file``: templates trusted, ``!unsafe`` values left alone."""
    return DataLoader().load_from_file(os.path.join(repo_root(), path), trusted_as_template=True)


def test_every_task_validates_against_its_awx_module():
    tasks = load("playbooks/awx_configure.yml")[0]["tasks"]
    modules_used = [next(key for key in task if key.startswith("awx.awx.")) for task in tasks]
    specs = {module: awx_module_spec(module.rsplit(".", 1)[1]) for module in modules_used}
    init_plugin_loader()  # filters and lookups the tasks use (product, ansible.builtin.vars)
    data = load("awx/configuration.yml")
    variables = dict(data, vault_phoenix_beta_db_password="s3cret", vault_phoenix_prod_db_password="s3cret")
    templar = Templar(loader=DataLoader(), variables=variables)
    validated = []
    for task, module in zip(tasks, modules_used):
        spec, checks = specs[module]
        items = templar.template(task["loop"]) if "loop" in task else [None]
        assert items, task["name"]
        for item in items:
            args = Templar(loader=DataLoader(), variables=dict(variables, item=item)).template(task[module])
            result = ArgumentSpecValidator(spec, **checks).validate(args)
            assert result.error_messages == [], (task["name"], result.error_messages)
            validated.append((module, args.get("name")))
    modules = {module for module, _name in validated}
    assert modules == {"awx.awx.organization", "awx.awx.execution_environment", "awx.awx.project",
                       "awx.awx.credential_type", "awx.awx.credential", "awx.awx.inventory",
                       "awx.awx.inventory_source", "awx.awx.job_template", "awx.awx.schedule"}
    names = [name for module, name in validated if module == "awx.awx.schedule"]
    assert "Phoenix BETA nightly backup" in names and "Phoenix PROD hourly cleanup" in names


def test_a_misspelled_option_is_caught():
    spec, checks = awx_module_spec("job_template")
    result = ArgumentSpecValidator(spec, **checks).validate({"name": "x", "playbok": "playbooks/backup.yml"})
    assert any("playbok" in message for message in result.error_messages)


def test_the_credential_type_injects_extra_vars_only():
    injectors = load("awx/configuration.yml")["phoenix_awx_credential_type"]["injectors"]
    assert set(injectors) == {"extra_vars"}  # env vars would land in ansible-runner's artifacts
    injected = {"phoenix_db_host", "phoenix_db_port", "phoenix_db_user", "phoenix_db_password", "phoenix_db_name",
                "phoenix_db_sslmode"}
    assert set(injectors["extra_vars"]) == injected
