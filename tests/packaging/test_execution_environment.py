"""The execution-environment definitions build a valid ansible-builder context (no image is built here)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from ansible_collections.phoenix.platform.tests.helpers import repo_root

BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


def test_create_turns_the_shipped_definition_into_a_build_context(tmp_path):
    done = subprocess.run([BUILDER, "create", "-f", "execution-environment.yml", "--context", str(tmp_path)],
                          cwd=repo_root(), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (tmp_path / "Dockerfile").read_text()
    assert "dnf -y module enable postgresql:16" in containerfile  # pg_dump 16 dumps servers up to 16
    assert "pg_dump --version" in containerfile and 'ansible-core>=2.19' in containerfile
    shipped = (tmp_path / "_build" / "requirements.txt").read_text()
    assert shipped == open(os.path.join(repo_root(), "requirements.txt")).read()
    assert "postgresql [platform:rpm]" in (tmp_path / "_build" / "bindep.txt").read_text()


def test_introspect_reads_the_collection_metadata():
    done = subprocess.run([BUILDER, "introspect", os.path.join(repo_root(), "collections")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    found = yaml.safe_load(done.stdout.split("\n", 1)[1])  # after the "# Dependency data for <path>" line
    assert any(line.startswith("psycopg[binary]") for line in found["python"])
    assert any(line.startswith("postgresql-client [platform:dpkg]") for line in found["system"])
