"""A database reached over TLS only, as managed PostgreSQL services and most production servers are: a run's
programs (pg_dump, pg_restore, psql) connect over TLS too. The pgserver wheel's programs are built without SSL
support. Before, a backup of a PostgreSQL 16 server took its pg_dump 16 (the server's major), which went without
TLS where the session had used it, and failed or, where the server took both, sent the rows in the clear. Now a
connection over TLS gives its programs sslmode=require, and only programs that can use it are chosen."""

from __future__ import annotations

import subprocess
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import conninfo_reached, open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool_and_major,
    needs_ssl,
    pgserver_bin_dir,
    speaks_ssl,
)
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup, phoenix_restore, phoenix_restore_drill
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import reload_config
from worlds_fixtures import app_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def tls_only(data) -> Iterator[str]:
    """The server with a self-signed certificate, taking TCP connections over TLS only (``hostnossl ... reject``);
    yields the data database's db_url over TCP, which asks for no sslmode (libpq's ``prefer``)."""
    cluster = data.cluster
    cert, key = cluster.data_dir / "phoenix-test.crt", cluster.data_dir / "phoenix-test.key"
    subprocess.run(["runuser", "-u", "postgres", "--", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    rules = cluster.data_dir / "pg_hba.conf"
    original = rules.read_text()
    # every database: a swap and a drill also connect to the server's postgres database and to new ones
    rules.write_text("hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n" + original)
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        for setting, value in (("ssl_cert_file", str(cert)), ("ssl_key_file", str(key)), ("ssl", "on")):
            try:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(setting), sql.Literal(value)))
            except psycopg.errors.InvalidParameterValue as exc:  # "SSL is not supported by this build"
                rules.write_text(original)
                pytest.skip("this server cannot serve TLS (the pgserver wheel's is built without it): %s" % exc)
    reload_config(cluster)
    yield "postgresql://postgres@127.0.0.1:%d/%s" % (cluster.port, data.name)
    rules.write_text(original)
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        for setting in ("ssl", "ssl_cert_file", "ssl_key_file"):
            conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(setting)))
    reload_config(cluster)


def test_a_backup_restore_and_drill_over_tls_run_their_programs_over_tls(data, tls_only, tmp_path):
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(tls_only + "?sslmode=disable").close()
    with open_session(tls_only) as conn:  # libpq's prefer took TLS: the programs may not go without it
        assert conn.pgconn.ssl_in_use and needs_ssl(conninfo_reached(conn))
    before = app_fingerprints(data)
    for options in ({"format": "custom"}, {"format": "directory", "compress": "lz4", "jobs": 2}):
        made = run_module(phoenix_backup.main, dict({"db_url": tls_only, "stage": "BETA", "dest": str(tmp_path),
                                                     "verify": True}, **options))
        assert made.get("failed") is not True and made["changed"] is True, made.get("msg")
        for mode in ("in_place", "swap"):
            restored = run_module(phoenix_restore.main, {"db_url": tls_only, "stage": "BETA", "dest": str(tmp_path),
                                                         "backup": made["backup"]["id"], "mode": mode})
            assert restored.get("failed") is not True, (options, mode, restored.get("msg"))
        drilled = run_module(phoenix_restore_drill.main, {"db_url": tls_only, "stage": "BETA", "dest": str(tmp_path),
                                                          "backup": made["backup"]["id"]})
        assert drilled.get("passed") is True, drilled.get("msg")
    assert app_fingerprints(data) == before


@pytest.mark.skipif(pgserver_bin_dir() is None, reason="needs the pgserver wheel, which requirements-dev.txt installs")
def test_programs_without_ssl_support_are_left_for_a_connection_over_tls():
    pgserver_pg_dump = pgserver_bin_dir() / "pg_dump"
    assert not speaks_ssl(pgserver_pg_dump) and speaks_ssl(find_tool_and_major("pg_dump", 15)[0])
    assert find_tool_and_major("pg_dump", 16, ssl=True)[0] != pgserver_pg_dump
    with pytest.raises(PhoenixError, match=r"no pg_dump for PostgreSQL 99 or newer that can make SSL connections, "
                                           r"as this run's do, was found \(found: .*pg_dump \(16, without SSL\)"):
        find_tool_and_major("pg_dump", 99, ssl=True)
