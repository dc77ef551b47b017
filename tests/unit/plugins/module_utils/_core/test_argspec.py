# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The option groups validate as Ansible validates a module's arguments."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import (
    CONNECTION_EXCLUSIVE,
    CONNECTION_OPTIONS,
    STAGE_OPTIONS,
    database_suboptions,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import LOGIN_OPTIONS


def validate(spec: dict, params: dict, **kwargs):
    return ArgumentSpecValidator(spec, **kwargs).validate(params)


def test_a_url_and_any_login_option_are_refused_by_name():
    for login in LOGIN_OPTIONS:
        value = 5432 if login == "login_port" else "x"
        result = validate(CONNECTION_OPTIONS, {"db_url": "postgresql://a@h/d", login: value},
                          mutually_exclusive=CONNECTION_EXCLUSIVE)
        assert "mutually exclusive: db_url|%s" % login in " ".join(result.error_messages)


def test_login_options_together_are_fine():
    result = validate(CONNECTION_OPTIONS, {"login_host": "h", "login_user": "u", "login_db": "d"},
                      mutually_exclusive=CONNECTION_EXCLUSIVE)
    assert result.error_messages == []
    assert result.validated_parameters["connect_timeout"] == 10


def test_the_stage_is_one_of_the_stages():
    result = validate(STAGE_OPTIONS, {"stage": "STAGING"})
    assert "value of stage must be one of: LOCAL, BETA, PROD" in " ".join(result.error_messages)


def test_a_second_database_is_the_connection_group_with_its_own_stage(monkeypatch):
    monkeypatch.setenv("APP_STAGE", "BETA")  # the run's stage must not become the other side's
    spec = {"source": dict(database_suboptions(), required=True)}
    missing_stage = validate(spec, {"source": {"db_url": "postgresql://a@h/d"}})
    assert "missing required arguments: stage found in source" in " ".join(missing_stage.error_messages)
    both = validate(spec, {"source": {"db_url": "postgresql://a@h/d", "login_user": "u", "stage": "LOCAL"}})
    assert "mutually exclusive: db_url|login_user found in source" in " ".join(both.error_messages)
    alias = validate(spec, {"source": {"conninfo": "host=h", "stage": "LOCAL"}})
    assert alias.error_messages == []
    assert alias.validated_parameters["source"]["db_url"] == "host=h"
