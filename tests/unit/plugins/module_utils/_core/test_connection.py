from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import ConnectionTarget, redact
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError


@pytest.mark.parametrize("text, expected", [
    ("postgresql://app:s3cr3t@db:5432/x failed", "postgresql://app:********@db:5432/x failed"),
    ("host=db password=s3cr3t user=app", "host=db password=******** user=app"),
    ("host=db password='s3 cr3t' user=app", "host=db password=******** user=app"),
    ("no secret here", "no secret here"),
])
def test_redact_conninfo_shapes(text, expected):
    assert redact(text) == expected


def test_redact_known_secret_anywhere():
    assert redact("error near 'hunter2'", ("hunter2",)) == "error near '********'"


def test_login_options_build_a_conninfo():
    target = ConnectionTarget({"login_host": "db", "login_port": 5433, "login_user": "app",
                               "login_password": "pw", "login_db": "phoenix", "connect_timeout": 5}, environ={})
    conninfo = target.conninfo()
    for part in ("host=db", "port=5433", "user=app", "dbname=phoenix", "connect_timeout=5", "password=pw"):
        assert part in conninfo
    assert target.describe() == "app@db:5433/phoenix"
    assert target.redact("password pw leaked") == "password ******** leaked"


def test_db_url_falls_back_to_environment_in_order():
    env = {"DATABASE_URL": "postgresql://b@h2/db2", "PHOENIX_DB_URL": "postgresql://a@h1/db1"}
    assert ConnectionTarget({}, environ=env).describe() == "a@h1:5432/db1"
    assert ConnectionTarget({}, environ={"DATABASE_URL": "postgresql://b@h2/db2"}).describe() == "b@h2:5432/db2"


def test_login_options_ignore_the_environment_url():
    target = ConnectionTarget({"login_host": "explicit"}, environ={"PHOENIX_DB_URL": "postgresql://a@h1/db1"})
    assert target.db_url == ""
    assert "explicit" in target.describe()


def test_password_from_url_is_a_secret():
    target = ConnectionTarget({"db_url": "postgresql://a:topsecret@h/d"}, environ={})
    assert target.secrets == ("topsecret",)
    assert "topsecret" not in target.describe()


def test_unparsable_db_url_message_has_no_password():
    target = ConnectionTarget({"db_url": "postgresql://a:topsecret@h/d?bogus=1"}, environ={})
    with pytest.raises(PhoenixError) as caught:
        target.conninfo()
    assert "not a valid libpq URI" in caught.value.msg
    assert "topsecret" not in caught.value.msg


def test_what_the_options_leave_out_is_described_and_redacted_as_libpq_takes_it_from_the_environment():
    env = {"PGHOST": "/run/app", "PGPORT": "6432", "PGUSER": "app", "PGDATABASE": "shop", "PGPASSWORD": "s3cr3t!"}
    assert ConnectionTarget({}, environ=env).describe() == "app@/run/app:6432/shop"
    assert ConnectionTarget({"login_db": "other"}, environ=env).describe() == "app@/run/app:6432/other"
    assert ConnectionTarget({}, environ=env).redact("auth failed for s3cr3t!") == "auth failed for ********"
    assert ConnectionTarget({}, environ={}).describe() == "<default user>@local socket:5432/<default db>"
