# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Advisory lock keys, and lock timeouts in words."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import (
    lock_key,
    lock_wait_message,
    waited_relation,
)


def test_lock_keys_are_stable_signed_64_bit_and_distinct():
    assert lock_key("schema") == lock_key("schema")
    assert lock_key("schema") != lock_key("world:A")
    assert -(2 ** 63) <= lock_key("schema") < 2 ** 63


def timed_out(context: str | None) -> SimpleNamespace:
    """What psycopg gives of a lock timeout: its diagnostics' context."""
    return SimpleNamespace(diag=SimpleNamespace(context=context))


@pytest.mark.parametrize("context, relation", [
    ('while deleting tuple (0,1) in relation "Chat"', "Chat"),
    ('while locking tuple (3,12) in relation "order lines"', "order lines"),
    ('while updating tuple (0,7) in relation "we"ird"', 'we"ird'),  # the server does not escape the quote
    ('while updating tuple (0,1) in relation "t"\nSQL statement "UPDATE t SET n = 1"\n'
     "PL/pgSQL function touch() line 3 at SQL statement", "t"),  # raised inside a trigger's function
    ("SQL statement \"LOCK TABLE t\"", None),  # a whole table: no row, no name
    (None, None),
])
def test_the_table_whose_row_was_waited_for_is_read_from_the_errors_context(context, relation):
    assert waited_relation(timed_out(context)) == relation


def test_a_lock_timeout_names_what_was_waited_for_who_holds_it_and_what_to_do():
    message = lock_wait_message("app@db:5432/shop", 5, "Chat", 'public."Chat" by session 42 of app (shop_web)')
    assert message == (
        'the run waited lock_timeout=5 s for a lock on a row of table "Chat" in app@db:5432/shop and gave up; its '
        "transaction was rolled back, so nothing was written. Held now by: public.\"Chat\" by session 42 of app "
        "(shop_web). Run it again once that transaction ends, or raise lock_timeout")
    released = lock_wait_message("app@db:5432/shop", None, None, "")
    assert released.startswith("the run waited the lock_timeout it runs with for a lock on a table in app@db")
    assert "No one holds it any more." in released
