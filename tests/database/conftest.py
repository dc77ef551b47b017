"""A throwaway PostgreSQL cluster for the whole session, and a fresh database per test.

The cluster is started with the collection's own LocalCluster (the code behind the
local_postgres role): system binaries when present, otherwise the pgserver wheel's.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._backups.swap import KEPT_MARK
from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
from ansible_collections.phoenix.platform.plugins.modules import phoenix_world
from ansible_collections.phoenix.platform.tests.helpers import free_port, isolated_environ, repo_root, run_module

from worlds_fixtures import migrate

# the server of an application that uses two-phase commit, and whose changes a pipeline reads (logical decoding)
THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                      "max_prepared_transactions": "4", "wal_level": "logical"}
# whose server programs the tests run: the system's (auto), or the pgserver wheel's PostgreSQL 16 (pgserver)
SERVER_PROGRAMS = os.environ.get("PHOENIX_TEST_SERVER", "auto")
SUPERUSER_PASSWORD = secrets.token_urlsafe(16)  # for the tests that log in over TCP


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (a stable sort keeps each group's order): with parallel workers (``pytest -n``), the
    run does not end with one worker on a test of a minute while the others wait."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def make_base_dir(prefix: str) -> Path:
    """A temp dir the server's OS user can reach (mkdtemp makes it 0700)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    return base


@contextlib.contextmanager
def serving(tool: str, arguments: list[str], base: Path, url: str, stop: signal.Signals) -> Iterator[None]:
    """Debian's ``tool`` (a pool or load balancer, installed outside a user's PATH) with ``arguments``, its files
    under ``base`` (removed afterwards), running until ``url`` accepts a connection through it, and stopped with
    ``stop`` at the end of the block."""
    command = [shutil.which(tool) or "/usr/sbin/" + tool, *arguments]
    as_user = []
    if os.geteuid() == 0:  # they refuse to run as root: as the server's user, which writes their files here
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    process = subprocess.Popen([*as_user, *command], stdout=subprocess.DEVNULL, stderr=(base / "stderr").open("wb"),
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert process.poll() is None and time.monotonic() < deadline, (base / "stderr").read_text()[-2000:]
                time.sleep(0.1)
        yield
    finally:
        os.killpg(process.pid, stop)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pgpool 4.3 may hang stopping, if told to just as it forks a child
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    base = make_base_dir("phoenix-test-")
    cluster = LocalCluster(base / "pg", free_port(), bin_source=SERVER_PROGRAMS, settings=THROWAWAY_SETTINGS)
    cluster.ensure_running()
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(SUPERUSER_PASSWORD)))
    yield cluster
    cluster.ensure_absent()
    shutil.rmtree(base, ignore_errors=True)


def reload_config(cluster: LocalCluster) -> None:
    """Have the server read its configuration files again (pg_hba.conf, postgresql.auto.conf)."""
    with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("SELECT pg_reload_conf()"))
    time.sleep(0.3)  # the postmaster reads the files on SIGHUP, after the call returns


@pytest.fixture
def hba_rejects(pg_cluster) -> Iterator:
    """``reject(database)``: pg_hba.conf refuses every connection to ``database``, as a server whose rules name
    only the application's databases does; the rules are put back after the test."""
    rules = pg_cluster.data_dir / "pg_hba.conf"
    original = rules.read_text()

    def reject(database: str) -> None:
        rules.write_text("local %s all reject\n%s" % (database, rules.read_text()))
        reload_config(pg_cluster)
    yield reject
    rules.write_text(original)
    reload_config(pg_cluster)


@dataclass
class Database:
    cluster: LocalCluster
    name: str

    @property
    def url(self) -> str:
        """Superuser over the private Unix socket (trust authentication)."""
        return "postgresql://postgres@/%s?host=%s&port=%d" % (self.name, self.cluster.socket_dir, self.cluster.port)

    password = SUPERUSER_PASSWORD

    def tcp_args(self, password: str | None = None) -> dict:
        """login_* options over TCP, where the server asks for the password."""
        return {"login_host": "127.0.0.1", "login_port": self.cluster.port, "login_user": "postgres",
                "login_password": self.password if password is None else password, "login_db": self.name}

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def query(self, query: str, params: tuple = ()) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql.SQL(query), params or None).fetchall()  # test-only static SQL

    def statistics(self, query: str, params: tuple = ()) -> list[tuple]:
        """``query`` of the server's statistics once every other client session of this database has ended. A
        session flushes its counts as it exits, after its client has gone: read at once, the counts may miss
        what the last module run did (a write it should not have made, say)."""
        deadline = time.monotonic() + 10
        with self.connect() as conn:  # autocommit: each statement sees the sessions and counts anew
            while conn.execute(sql.SQL(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")).fetchone()[0]:
                assert time.monotonic() < deadline, "sessions of %s still connected after 10 s" % self.name
                time.sleep(0.02)
            return conn.execute(sql.SQL(query), params or None).fetchall()  # test-only static SQL


@pytest.fixture
def database(pg_cluster: LocalCluster) -> Iterator[Database]:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield Database(pg_cluster, name)
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def dead_rows(database: Database, table: str) -> int:
    """The dead rows of ``table`` in the server's statistics, once the sessions that made them have ended."""
    return database.statistics("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,))[0][0]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection or stage settings leak in from the caller's environment."""
    for name in ("PHOENIX_DB_URL", "DATABASE_URL", "APP_STAGE", "PGPASSWORD", "PHOENIX_BACKUP_DIR",
                 "PHOENIX_WORLD_MAX_PER_ENV"):
        monkeypatch.delenv(name, raising=False)
    os.environ.setdefault("HOME", "/root")


TRANSFER_SEED = {"users": 3, "artifacts": 8, "chats": 2, "messages_per_chat": 3}


@pytest.fixture
def pair(pg_cluster):
    """A LOCAL source and a BETA target database."""
    made = []
    for stage in ("LOCAL", "BETA"):
        name = "tr_" + uuid.uuid4().hex[:10]
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database = Database(pg_cluster, name)
        migrate(database, stage=stage)
        made.append(database)
    source, target = made
    run_module(phoenix_world.main, {"db_url": source.url, "stage": "LOCAL", "id": "UC_TESTING",
                                    "seed": TRANSFER_SEED})
    run_module(phoenix_world.main, {"db_url": source.url, "stage": "LOCAL", "id": "UC_OTHER",
                                    "seed": {"users": 1, "artifacts": 1, "chats": 0}})
    yield source, target
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        for database in made:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database.name)))


@pytest.fixture
def data(database):
    """A migrated BETA database with one world (KEEP_ME) of generated rows."""
    migrate(database)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "KEEP_ME",
                                    "seed": {"users": 3, "artifacts": 6, "chats": 2}})
    return database


def databases_like(database, marker: str) -> list[str]:
    return [name for (name,) in database.query("SELECT datname FROM pg_database WHERE starts_with(datname, %s) "
                                               "ORDER BY 1", (database.name + marker,))]


def drop_swapped(database) -> None:
    """What the swaps kept, beside the fixture's own database."""
    with database.connect() as conn:
        for name in databases_like(database, KEPT_MARK) + databases_like(database, "_phoenix_restore"):
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def swappable(data):
    """``data``, and what restores swapped out of its place, dropped after the test."""
    yield data
    drop_swapped(data)


@pytest.fixture
def shop_roles(pg_cluster):
    """The application's own roles: shop_web with privileges and settings on its database, shop_owner that may
    create databases and read every table, but not change other roles."""
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE shop_web LOGIN"))
        conn.execute(sql.SQL("CREATE ROLE shop_owner LOGIN CREATEDB IN ROLE pg_read_all_data"))
    yield
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        for role in ("shop_web", "shop_owner"):
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))  # privileges on databases too
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def refusal_purpose(made, mode: str | None, database) -> str:
    """How a refusal names the run: a drill (no mode), or a restore over (in place) or beside (swap) the database."""
    backup = made["backup"]["id"]
    if not mode:
        return "a drill of backup %s" % backup
    return "restoring backup %s %s database %s" % (backup, "over" if mode == "in_place" else "beside", database.name)


def refused_as_unidentified(purpose: str, writes: str, spelled: str, *tables: str) -> str:
    """What ``purpose`` says when it ``writes`` ("updates" or "deletes") rows of ``tables``, the first of which
    (``spelled`` as in SQL) has a primary key but REPLICA IDENTITY NOTHING, under the publication of all tables cdc."""
    refused = {"updates": "any update of it (an INSERT ... ON CONFLICT DO UPDATE too)", "deletes": "any delete from it"}
    return ("%s %s rows of %s, whose %s a publication sends to a change pipeline, and %s has REPLICA IDENTITY "
            "NOTHING, so the server refuses %s; give it its primary key as one (ALTER TABLE %s REPLICA IDENTITY "
            "DEFAULT), or take it out of the publication; nothing was written"
            % (purpose, writes, ", ".join("%s (publication cdc)" % table for table in tables), writes,
               "which" if len(tables) == 1 else "the first of which", refused[writes], spelled))


def hand_to_shop_owner(database) -> None:
    with database.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO shop_owner").format(sql.Identifier(database.name)))


@pytest.fixture
def owned_by_shop_owner(shop_roles, database):  # the roles set up before the database, removed after it
    """shop_owner's database, whose application objects are all shop_owner's."""
    hand_to_shop_owner(database)
    migrate(types.SimpleNamespace(url=make_conninfo(database.url, user="shop_owner")))
    yield database
    drop_swapped(database)


def kill_when_blocked(database: Database, lock: sql.Composable, script: str, *args: str) -> str:
    """Run ``script`` (Python, with the collection importable) while this test holds ``lock`` in ``database``; once a
    Phoenix session waits on it, SIGKILL the process and wait until the server has ended its sessions (so it has
    rolled back). Returns the statement the session was waiting in."""
    env = dict(os.environ, PYTHONPATH=os.path.join(repo_root(), "collections"))
    phoenix_sessions = ("SELECT query FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE 'phoenix.platform.%'")
    with database.connect() as blocker:
        blocker.autocommit = False
        blocker.execute(lock)
        process = subprocess.Popen([sys.executable, "-c", script, *args], env=env)
        deadline = time.monotonic() + 60
        waiting = []
        while not waiting and time.monotonic() < deadline and process.poll() is None:
            waiting = database.query(phoenix_sessions + " AND wait_event_type = 'Lock'")
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        blocker.rollback()
    assert waiting, "the run never waited on the lock"
    assert process.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while database.query(phoenix_sessions) and time.monotonic() < deadline:
        time.sleep(0.05)  # the server notices the dropped connection and rolls back
    return waiting[0][0]


@pytest.fixture(scope="module")
def phoenix_home() -> Iterator[dict[str, str]]:
    """A PHOENIX_HOME and port of its own for the playbooks of one test module (their embedded cluster)."""
    base = make_base_dir("phoenix-e2e-")
    (base / "tmp").mkdir()  # a module killed by a crash test leaves its unpacked payload here, not in /tmp
    env = isolated_environ(PHOENIX_HOME=str(base / "home"), PHOENIX_PG_PORT=str(free_port()),
                           ANSIBLE_CONFIG=os.path.join(repo_root(), "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                           TMPDIR=str(base / "tmp"))
    yield env
    cluster = LocalCluster(base / "home" / "postgres", int(env["PHOENIX_PG_PORT"]))
    if cluster.status() == "running":
        cluster.ensure_stopped()
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def server_settings(pg_cluster: LocalCluster, **settings: str) -> Iterator[None]:
    """Server-wide settings for one test (ALTER SYSTEM, then a reload), put back afterwards: reset, or set again
    when ALTER SYSTEM had set them (a standby's primary_conninfo, say). Each value is given as ``current_setting``
    shows it (``32MB``, ``1s``): the reload has reached new sessions once they show it."""
    def shown() -> dict[str, tuple[str, bool]]:
        """Each setting's value, and whether ALTER SYSTEM set it."""
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
            return {name: conn.execute(sql.SQL(
                "SELECT current_setting(name), coalesce(sourcefile LIKE '%%/postgresql.auto.conf', false) "
                "FROM pg_settings WHERE name = %s"), [name]).fetchone() for name in settings}

    def apply(statements: list[sql.Composable], expected: dict[str, str]) -> None:
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute(sql.SQL("SELECT pg_reload_conf()"))
        deadline = time.monotonic() + 10
        while {name: shown_now[0] for name, shown_now in shown().items()} != expected:  # new sessions see it shortly after
            assert time.monotonic() < deadline, "the server's settings are not %s" % expected
            time.sleep(0.1)

    def set_to(name: str, value: str) -> sql.Composable:
        return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
    before = shown()
    apply([set_to(name, value) for name, value in settings.items()], settings)
    try:
        yield
    finally:
        put_back = [set_to(name, value) if by_alter_system else sql.SQL("ALTER SYSTEM RESET {}").format(
            sql.Identifier(name)) for name, (value, by_alter_system) in before.items()]
        apply(put_back, {name: was[0] for name, was in before.items()})


@contextlib.contextmanager
def logical_slot(database: Database, name: str) -> Iterator[None]:
    """A logical replication slot of ``database``, as a change data capture pipeline (Debezium, say) creates one;
    dropped afterwards, as it holds WAL for the whole server."""
    with database.connect() as conn:
        conn.execute(sql.SQL("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')"), [name])
    try:
        yield
    finally:
        with database.connect() as conn:
            conn.execute(sql.SQL("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                                 "WHERE slot_name = %s"), [name])


@contextlib.contextmanager
def table_held(database: Database, mode: str, prepared_as: str | None = None,
               released_after: float = 60, user: str | None = None) -> Iterator[str]:
    """The first application table of schema public, locked in ``mode`` (``ACCESS EXCLUSIVE``, say) by a
    migration's open transaction (of role ``user``, else the test's superuser), as ``held_by`` holds it. Yields the
    table."""
    with database.connect() as conn:
        table = conn.execute(sql.SQL("SELECT format('%I.%I', schemaname, min(relname)) FROM pg_stat_user_tables "
                                     "WHERE schemaname = 'public' GROUP BY schemaname")).fetchone()[0]
    with held_by(database, sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.SQL(table), sql.SQL(mode)),
                 "nightly migration", prepared_as, released_after, user):
        yield table


@contextlib.contextmanager
def held_by(database: Database, statement: sql.Composable, application: str, prepared_as: str | None = None,
            released_after: float = 60, user: str | None = None) -> Iterator[int | None]:
    """The locks ``statement`` takes, held by an open transaction of a session named ``application``; with
    ``prepared_as``, by one it left prepared under that id (a two-phase commit whose coordinator crashed before
    deciding), which holds its locks, and its database, without a session. Released after ``released_after``
    seconds at the latest: a run that would wait without end then ends, and fails its test, instead of hanging.
    Yields the holding session's process id (None for a prepared transaction). The session is ``user``'s, else the
    test's superuser's."""
    conn = psycopg.connect(make_conninfo(database.url, user=user) if user else database.url, autocommit=True,
                           application_name=application)
    pid = None if prepared_as else conn.info.backend_pid
    conn.execute(sql.SQL("BEGIN"))
    conn.execute(statement)
    if prepared_as:
        conn.execute(sql.SQL("PREPARE TRANSACTION {}").format(sql.Literal(prepared_as)))
        conn.close()  # the coordinator is gone

    def release() -> None:
        if prepared_as:
            with database.connect() as other:
                if other.execute(sql.SQL("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s"), [prepared_as]).fetchone():
                    other.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(prepared_as)))
        conn.close()  # a session's transaction ends with it
    releasing = threading.Timer(released_after, release)
    releasing.start()
    try:
        yield pid
    finally:
        releasing.cancel()
        release()


@pytest.fixture(scope="module")
def standby(pg_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """A hot standby of the test cluster, streaming its WAL (pg_basebackup -R), as platform teams run a replica to
    take backups and answer reads."""
    base = make_base_dir("phoenix-standby-")
    replica = LocalCluster(base / "pg", free_port(), bin_source=SERVER_PROGRAMS, settings=THROWAWAY_SETTINGS)
    try:
        replica.data_dir.mkdir(parents=True, mode=0o700)
        replica.socket_dir.mkdir(mode=0o700)
        replica.log_file.touch(0o600)
        for path in (replica.data_dir, replica.socket_dir, replica.log_file):  # the server's user writes them
            if replica.run_as:
                shutil.chown(path, replica.run_as, replica.run_as)
        command = [str(pg_cluster.bin_dir / "pg_basebackup"), "-D", str(replica.data_dir), "-h",
                   str(pg_cluster.socket_dir), "-p", str(pg_cluster.port), "-U", "postgres", "--write-recovery-conf",
                   "--wal-method=stream", "--no-sync", "--checkpoint=fast"]
        subprocess.run(["runuser", "-u", replica.run_as, "--", *command] if replica.run_as else command,
                       check=True, capture_output=True)
        replica.ensure_running()  # its own port and socket over the primary's (phoenix.conf)
        yield replica
    finally:
        replica.ensure_absent()
        shutil.rmtree(base, ignore_errors=True)


def replayed(primary: Database, standby: LocalCluster) -> Database:
    """``primary``'s database on ``standby``, once the standby has replayed everything written to it so far."""
    with primary.connect() as conn:
        written = conn.execute(sql.SQL("SELECT pg_current_wal_insert_lsn()")).fetchone()[0]  # written or not yet
        # The standby receives only WAL flushed on the primary, and with synchronous_commit off the last records may
        # wait for the next commit: this one's flushes everything up to it.
        conn.execute(sql.SQL("SET synchronous_commit = on"))
        conn.execute(sql.SQL("SELECT txid_current()"))
    deadline = time.monotonic() + 30
    with psycopg.connect(**standby.conninfo(), autocommit=True) as conn:
        while not conn.execute(sql.SQL("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"), [written]).fetchone()[0]:
            assert time.monotonic() < deadline, "the standby has not replayed %s" % written
            time.sleep(0.05)
    return Database(standby, primary.name)
