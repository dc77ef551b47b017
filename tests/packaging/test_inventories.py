"""The shipped inventories parse, and each host declares its stage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.phoenix.platform.tests.helpers import repo_root


@pytest.mark.parametrize("inventory, stages", [
    ("inventories/local", {"phoenix-local": "LOCAL"}),
    ("inventories/example-deployment", {"phoenix-local": "LOCAL", "phoenix-beta": "BETA", "phoenix-prod": "PROD"}),
])
def test_inventory_hosts_and_stages(inventory, stages, tmp_path):
    source = tmp_path / "inventory"
    shutil.copytree(os.path.join(repo_root(), inventory), source)
    example = source / "group_vars" / "phoenix" / "vault.yml.example"
    if example.exists():  # as a user does: the example becomes the (here unencrypted) vault file
        example.rename(example.with_name("vault.yml"))
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", str(source),
                           "--list"], capture_output=True, text=True, check=True)
    listed = json.loads(done.stdout)
    hostvars = listed["_meta"]["hostvars"]
    assert {host: hostvars[host]["phoenix_stage"] for host in hostvars} == stages
    assert set(stages) <= set(listed["phoenix"].get("hosts", [])) | {
        host for child in listed["phoenix"].get("children", []) for host in listed[child].get("hosts", [])}
