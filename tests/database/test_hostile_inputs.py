"""Hostile and mistaken input: one clear message, no traceback, no write, no secret in the output."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_backup,
    phoenix_health,
    phoenix_restore,
    phoenix_schema,
    phoenix_seed,
    phoenix_transfer,
    phoenix_user,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_values import server_message
from ansible_collections.phoenix.platform.tests.helpers import run_module

from worlds_fixtures import PASSWORD_HASH, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SECRET = "Hostile-Secret-9f3k"
LONG = "x" * 5000

# (module, options, a phrase the message must hold); {tmp} is a fresh directory, {url} the database.
CORPUS = [
    (phoenix_backup, {"dest": "/tmp/" + LONG}, "File name too long"),
    (phoenix_backup, {"dest": "/proc/phoenix-backups"}, "/proc/phoenix-backups"),
    (phoenix_backup, {"dest": ""}, "dest must not be empty"),
    (phoenix_backup, {"dest": "{tmp}", "retention_days": 1000000}, "retention_days"),
    (phoenix_backup, {"dest": "{tmp}", "compress": 99}, "compress must be from 0 to 9"),
    (phoenix_seed, {"state": "exported", "world": "UC_TESTING", "dest": ""}, "dest must not be empty"),
    (phoenix_seed, {"state": "exported", "world": "UC_TESTING", "dest": "/proc/seed"}, "/proc"),
    (phoenix_seed, {"state": "imported", "src": "{tmp}/" + LONG}, "File name too long"),
    (phoenix_seed, {"state": "imported", "src": "{tmp}/deep"}, "nested too deeply"),
    (phoenix_world, {"id": "UC_TESTING", "seed": {"users": "abc"}}, "seed.users must be a whole number"),
    (phoenix_world, {"id": "UC_TESTING", "seed": {"users": -5}}, "seed.users must be a whole number"),
    (phoenix_world, {"id": "UC_TESTING", "seed": {"users": 10 ** 9}}, "seed.users must be a whole number"),
    (phoenix_world, {"id": "UC_TESTING", "cleanup_after_hours": 2147483647}, "cleanup_after_hours must be"),
    (phoenix_world, {"id": "UC_TESTING", "cleanup_after_hours": -1}, "cleanup_after_hours must be"),
    (phoenix_world, {"id": "uc_testing'; DROP TABLE \"User\"; --"}, "not a valid world id"),
    (phoenix_user, {"email": ["a@b.example", "c@d.example"], "password": SECRET}, "not a valid address"),
    (phoenix_user, {"email": "robert'); DROP TABLE \"User\";--@x.example", "password": SECRET}, "not a valid address"),
    (phoenix_world_info, {"format": "xml"}, "format"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "BETA"}, "worlds": ["UC_TESTING"],
                        "mask": {"User.emial": "null"}}, "User.emial"),
    (phoenix_restore, {"backup": "../../etc", "safety_backup": False}, "not a backup directory"),
    (phoenix_restore, {"backup": "/etc", "safety_backup": False}, "not a backup directory"),
    (phoenix_restore, {"backup": "latest", "dest": "{tmp}/none", "safety_backup": False}, "no backup of BETA"),
    (phoenix_backup, {"dest": "{tmp}", "kind": "pre-restore; rm -rf /"}, "value of kind must be one of"),
    (phoenix_backup, {"dest": "{tmp}", "format": "tar"}, "value of format must be one of"),
    (phoenix_backup, {"dest": "{tmp}", "fresh_within_hours": -2}, "fresh_within_hours must be from 0"),
    (phoenix_backup, {"dest": "{tmp}", "jobs": 0}, "jobs must be from 1"),
    (phoenix_backup, {"dest": "{tmp}", "keep_min": -1}, "keep_min must be from 0"),
    (phoenix_backup, {"dest": "{tmp}", "lock_timeout": -1}, "lock_timeout must be from 0"),
    (phoenix_world_cleanup, {"max_age_hours": 99999999999999}, "max_age_hours must be from 0"),
    (phoenix_world_cleanup, {"lock_timeout": -1}, "lock_timeout must be from 0"),
    (phoenix_health, {"max_worlds": -1}, "max_worlds must be from 0"),
    (phoenix_health, {"fail_on": "sometimes"}, "value of fail_on must be one of"),
    (phoenix_schema, {"app_schema": "reference; DROP TABLE x"}, "value of app_schema must be one of"),
    (phoenix_audit, {"operation": " "}, "operation must name what happened"),
    (phoenix_audit, {"operation": "deploy.succeeded", "details": {"a": ["\x00"]}}, "details.a.0 holds a NUL byte"),
    (phoenix_audit, {"operation": "ok", "details": "not a dict"}, "details"),
    (phoenix_seed, {"state": "imported", "src": "/etc"}, "not a seed directory"),
    (phoenix_seed, {"state": "imported", "src": "{tmp}", "conflict": "overwrite"}, "value of conflict must be one of"),
    (phoenix_seed, {"state": "exported", "world": "NOPE", "dest": "{tmp}/out"}, "world NOPE does not exist"),
    (phoenix_seed, {"state": "exported", "world": "UC_TESTING", "dest": "/etc"}, "not a seed directory"),
    (phoenix_seed, {"state": "orphans_removed", "blob_dir": "/"}, "is not a blob directory"),
    (phoenix_seed, {"state": "orphans_removed", "blob_dir": "{tmp}"}, "is not a blob directory"),
    (phoenix_user, {"email": "a@b.example", "role": "root", "password": SECRET}, "value of role must be one of"),
    (phoenix_user, {"email": "", "password": SECRET}, "not a valid address"),
    (phoenix_user, {"email": "a\nb@c.example", "password": SECRET}, "not a valid address"),
    (phoenix_user, {"email": "a@b.example", "password": SECRET, "world": "NOPE"}, "world NOPE does not exist"),
    (phoenix_user, {"email": "a@b.example", "password": SECRET + "\x00"}, "password holds a NUL byte"),
    (phoenix_world, {"id": "UC_X", "from_template": "NOPE"}, "template world NOPE does not exist"),
    (phoenix_world, {"id": "UC_X", "dependencies": ["UC_X"]}, "cannot depend on itself"),
    (phoenix_world, {"id": "UC_X", "dependencies": ["NOPE"]}, "depends on worlds that do not exist: NOPE"),
    (phoenix_world, {"id": "UC_X", "category": "x\x00y"}, "category holds a NUL byte"),
    (phoenix_world, {"id": "", "state": "absent"}, "not a valid world id"),
    (phoenix_world, {"id": "UC_TESTING", "seed": {"unknown_key": 1}}, "seed has unknown keys unknown_key"),
    (phoenix_world, {"id": "UC_TESTING", "seed": "lots"}, "seed"),
    (phoenix_world, {"id": "UC_TESTING", "stage": "beta"}, "value of stage must be one of"),
    (phoenix_world_info, {"category": "\x00"}, "category holds a NUL byte"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "PRODUCTION"}, "worlds": ["UC_TESTING"]},
     "value of stage must be one of"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "BETA"}, "worlds": ["UC_TESTING"], "suffix": "'; drop"},
     "is not a valid world id"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "BETA"}, "worlds": ["UC_TESTING"],
                        "include": ["everything"]}, "include names unknown groups everything"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "LOCAL"}, "worlds": ["UC_TESTING"]}, "stage fence"),
    (phoenix_transfer, {"source": {"db_url": "{url}", "stage": "BETA"}, "worlds": ["GHOST"]}, "GHOST"),
]


@pytest.fixture
def target(database, tmp_path):
    migrate(database)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "UC_TESTING",
                                    "seed": {"users": 2, "artifacts": 2, "chats": 1}})
    (tmp_path / "deep").mkdir()
    (tmp_path / "blobs").mkdir()  # {tmp} holds directories: not a blob directory
    (tmp_path / "deep" / "seed.json").write_text("[" * 100000 + "]" * 100000)
    return database


def fill(value, tmp_path, url):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp_path)).replace("{url}", url)
    if isinstance(value, dict):
        return {k: fill(v, tmp_path, url) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, tmp_path, url) for v in value]
    return value


@pytest.mark.parametrize("module, options, expected", CORPUS,
                         ids=["%s-%d" % (m.__name__.rsplit(".", 1)[-1], i) for i, (m, _o, _e) in enumerate(CORPUS)])
def test_hostile_input_gets_one_clear_message(target, tmp_path, module, options, expected):
    before = table_fingerprints(target)
    url = target.url.replace("postgres@", "postgres:%s@" % SECRET)  # a password in the URL must never show
    result = run_module(module.main, dict({"db_url": url, "stage": "BETA"}, **fill(options, tmp_path, url)))
    assert result.get("failed") is True, result
    assert expected in result["msg"], result["msg"]
    assert "Traceback" not in result["_raw"] and "exception" not in result
    assert SECRET not in result["_raw"]
    assert table_fingerprints(target) == before
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*")), "a partial file was left behind"


@pytest.mark.parametrize("db_url", [
    "postgresql://user:%s@host:5432/db\x00" % SECRET,
    "postgresql://user:%s @host/db?sslmode=bogus" % SECRET,
    "postgresql://user:%s@[::1/db" % SECRET,
    "host=x password='%s dbname=db" % SECRET,
])
def test_a_malformed_url_never_echoes_its_password(db_url):
    result = run_module(phoenix_world_info.main, {"db_url": db_url, "stage": "BETA"})
    assert result["failed"] is True
    assert "Traceback" not in result["_raw"]
    for part in (SECRET, SECRET[:8], SECRET[-8:]):
        assert part not in result["_raw"]


def test_a_list_given_as_an_email_is_refused_whole(database):
    migrate(database)
    result = run_module(phoenix_user.main, {"db_url": database.url, "stage": "BETA",
                                            "email": ["a@b.example"], "password": SECRET})
    assert result["failed"] is True and SECRET not in result["_raw"]
    assert database.query('SELECT count(*) FROM "User"') == [(0,)]
    assert json.loads(result["_raw"])["failed"] is True


def test_a_servers_refusal_of_rows_names_where_they_failed_never_what_they_held(database):
    """What a restore's COPYs in pieces, and any run, report of the server's refusal of a row."""
    refused = {}
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE keyed (id int PRIMARY KEY, secret text NOT NULL, n int, note text)"))
        conn.execute(sql.SQL("INSERT INTO keyed VALUES (7, 'taken', 0, '')"))
        for case, rows in {"type": "1\t%s\tnot-a-number\t\n", "columns": "1\t%s\t1\t\textra\n",
                           "null": "1\t\\N\t1\t%s\n", "key": "7\t%s\t1\t\n"}.items():
            try:
                with conn.cursor().copy(sql.SQL("COPY keyed FROM STDIN")) as copy:
                    copy.write((rows % PASSWORD_HASH).encode())
            except psycopg.Error as exc:
                refused[case] = server_message(exc)
    assert refused["type"] == 'invalid input syntax for type integer: "..."; COPY keyed, line 1, column n'
    assert refused["columns"] == "extra data after last expected column; COPY keyed, line 1"
    assert refused["null"] == ('null value in column "secret" of relation "keyed" violates not-null constraint\n'
                               "DETAIL:  (the row's values are not shown)\nCONTEXT:  COPY keyed, line 1")
    assert refused["key"] == ('duplicate key value violates unique constraint "keyed_pkey"\n'
                              "DETAIL:  Key (id)=(7) already exists.\nCONTEXT:  COPY keyed, line 1")
    assert not any(PASSWORD_HASH in message or "N9qo8u" in message for message in refused.values())
