"""The statements that give a swapped-in database the old one's encoding, locale, privileges and settings."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.database_properties import (
    DatabaseProperties,
    Grant,
    Setting,
    access_statements,
    comment_statements,
    create_options,
    limit_statements,
    setting_statements,
    split_list,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

CATALOG = {"datcollate": "C", "datctype": "C", "datconnlimit": -1}


@pytest.mark.parametrize("stored, elements", [
    ('"$user", public', ["$user", "public"]),
    ("app", ["app"]),
    ('""', [""]),
    ('a,b ,  "c d" , "x""y"', ["a", "b", "c d", 'x"y']),
])
def test_list_settings_split_as_the_server_stores_them(stored, elements):
    assert split_list(stored) == elements


@pytest.mark.parametrize("stored", ["a b", '"unterminated'])
def test_a_value_that_is_no_list_is_refused(stored):
    with pytest.raises(ValueError):
        split_list(stored)


def test_settings_keep_list_elements_apart_and_quote_everything():
    properties = DatabaseProperties("UTF8", "pg_default", CATALOG, settings=[
        Setting(None, "search_path", '"$user", app'), Setting(None, "phoenix.note", "it's"),
        Setting("web", "work_mem", "8MB")])
    assert [s.as_string(None) for s in setting_statements("shop", properties)] == [
        "ALTER DATABASE \"shop\" SET \"search_path\" TO '$user', 'app'",
        "ALTER DATABASE \"shop\" SET \"phoenix.note\" TO 'it''s'",
        "ALTER ROLE \"web\" IN DATABASE \"shop\" SET \"work_mem\" TO '8MB'"]


def test_a_broken_list_setting_names_the_database_and_the_setting():
    properties = DatabaseProperties("UTF8", "pg_default", CATALOG, settings=[Setting(None, "search_path", "a b")])
    with pytest.raises(PhoenixError, match="database shop has the setting search_path = 'a b'"):
        setting_statements("shop", properties)


@pytest.mark.parametrize("catalog, locale_options", [
    ({}, ""),  # before PostgreSQL 15
    ({"datlocprovider": "c"}, " LOCALE_PROVIDER libc"),
    ({"datlocprovider": "i", "daticulocale": "und"}, " LOCALE_PROVIDER icu ICU_LOCALE 'und'"),
    ({"datlocprovider": "i", "datlocale": "de", "daticurules": "&a<b"},
     " LOCALE_PROVIDER icu ICU_LOCALE 'de' ICU_RULES '&a<b'"),
    ({"datlocprovider": "b", "datlocale": "C.UTF-8"}, " LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"),
])
def test_create_options_follow_the_server_versions_catalog(catalog, locale_options):
    options = create_options(DatabaseProperties("LATIN1", "fast ssd", dict(CATALOG, **catalog)))
    assert options.as_string(None) == ("TABLESPACE \"fast ssd\" ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
                                       + locale_options)


def test_privileges_are_replaced_and_the_owners_own_are_left_implicit():
    properties = DatabaseProperties("UTF8", "pg_default", dict(CATALOG, datconnlimit=40), grants=[
        Grant(None, "CONNECT", False), Grant("owner", "CREATE", False), Grant("web", "TEMPORARY", True)],
        comment="the shop's data")
    assert [s.as_string(None) for s in access_statements("new", "owner", properties)] == [
        'REVOKE ALL ON DATABASE "new" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "new" TO PUBLIC',
        'GRANT TEMPORARY ON DATABASE "new" TO "web" WITH GRANT OPTION']


def test_default_privileges_need_no_statement():
    assert access_statements("new", "owner", DatabaseProperties("UTF8", "pg_default", CATALOG)) == []


def test_the_comment_is_given_by_the_name_after_the_swap_and_replaces_the_scratch_mark_even_when_there_is_none():
    commented = DatabaseProperties("UTF8", "pg_default", CATALOG, comment="the shop's data")
    assert [s.as_string(None) for s in comment_statements("shop", commented)] == [
        "COMMENT ON DATABASE \"shop\" IS 'the shop''s data'"]
    assert [s.as_string(None) for s in comment_statements("shop", DatabaseProperties("UTF8", "pg_default", CATALOG))] == [
        'COMMENT ON DATABASE "shop" IS NULL']


def test_the_connection_limit_is_given_by_the_name_the_database_has_after_the_swap():
    limited = DatabaseProperties("UTF8", "pg_default", dict(CATALOG, datconnlimit=40))
    assert [s.as_string(None) for s in limit_statements("shop", limited)] == ['ALTER DATABASE "shop" CONNECTION LIMIT 40']
    assert limit_statements("shop", DatabaseProperties("UTF8", "pg_default", CATALOG)) == []  # no limit


def test_the_default_tablespace_is_not_named():
    assert create_options(DatabaseProperties("UTF8", "pg_default", CATALOG)).as_string(None) == \
        "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
