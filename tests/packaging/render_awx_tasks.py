"""Print the awx.awx tasks of playbooks/awx_configure.yml rendered with awx/configuration.yml, as JSON.

Run as a script: Ansible's plugin loader, which rendering needs, takes over imports for the rest of the
process, so the tests call this in a process of its own."""

from __future__ import annotations

import json
import os
import sys

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar


def load(root: str, path: str):
    """As ansible-playbook loads a playbook or ``-e @file``: templates trusted, ``!unsafe`` values left alone."""
    return DataLoader().load_from_file(os.path.join(root, path), trusted_as_template=True)


def rendered(root: str) -> list[dict]:
    init_plugin_loader()
    variables = dict(load(root, "awx/configuration.yml"), vault_phoenix_beta_db_password="s3cret",
                     vault_phoenix_prod_db_password="s3cret", vault_phoenix_prod_backup_identity="AGE-SECRET-KEY-1X")
    tasks = []
    for task in load(root, "playbooks/awx_configure.yml")[0]["tasks"]:
        module = next(key for key in task if key.startswith("awx.awx."))
        items = Templar(loader=DataLoader(), variables=variables).template(task["loop"]) if "loop" in task else [None]
        for item in items:
            args = Templar(loader=DataLoader(), variables=dict(variables, item=item)).template(task[module])
            tasks.append({"task": str(task["name"]), "module": str(module), "args": args})
    return tasks


if __name__ == "__main__":
    json.dump(rendered(sys.argv[1]), sys.stdout, default=str)
