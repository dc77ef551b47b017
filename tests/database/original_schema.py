"""A database shaped like the original WelcomeCraft application, built by its own (modelled) migrator."""

from __future__ import annotations

import importlib.util
import os

from ansible_collections.phoenix.platform.tests.helpers import repo_root

FIXTURE = os.path.join(repo_root(), "tests", "fixtures", "welcomecraft")
ONBOARDING_SEED = os.path.join(FIXTURE, "seeds", "ONBOARDING_TOUR")


def _migrator():
    spec = importlib.util.spec_from_file_location("welcomecraft_migrate", os.path.join(FIXTURE, "migrate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_original(database) -> int:
    """Apply the application's migrations to ``database``; returns how many."""
    return _migrator().migrate(database.url)
