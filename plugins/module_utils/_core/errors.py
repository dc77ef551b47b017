# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors every Phoenix module turns into one clear ``fail_json`` message."""

from __future__ import annotations

from typing import Any, Iterable


class PhoenixError(Exception):
    """An expected failure: ``msg`` says what failed and what to do about it.

    ``details`` are extra, secret-free return values for the failed task. ``secrets`` are values given where no
    secret belongs (a secret key in a list of public keys, say): the failed task's output masks them wherever they
    appear, its echo of the module's arguments included.
    """

    def __init__(self, msg: str, secrets: Iterable[str] = (), **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.secrets = frozenset(secrets)
        self.details = details


class StageFenceError(PhoenixError):
    """The declared stage differs from the stage registered in the database."""


class ProdGuardError(PhoenixError):
    """A development operation was asked for in PROD without ``allow_prod``."""


class LockBusyError(PhoenixError):
    """Another run holds the advisory lock for the same scope."""
