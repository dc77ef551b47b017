"""Restores around logical replication: a change data capture slot and a subscription stay with the database."""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import dump as dump_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups import restore as restore_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups import swap as swap_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import scratch_name
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import server_major
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup, phoenix_restore, phoenix_restore_drill

from conftest import logical_slot
from test_swap_restore import call, databases_like, drop_swapped
from worlds_fixtures import app_fingerprints, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")

SLOT = "orders_cdc"  # what a change data capture pipeline (Debezium, say) reads the shop's changes through
SUBSCRIPTION = "price feed'; DROP TABLE \"Artifact\"; --"  # the shop pulls its supplier's price changes in (a name to trip quoting)
PUBLISHERS_PASSWORD = "Supplier-Feed-7f3k"


@pytest.fixture
def swappable(data):
    yield data
    drop_swapped(data)


def subscribe(database) -> None:
    """A subscription to a publisher that is not there yet (not connected, so no slot on its side)."""
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION prices WITH (connect = false)").format(
            sql.Identifier(SUBSCRIPTION), sql.Literal("host=supplier.invalid dbname=prices password=" + PUBLISHERS_PASSWORD)))


def unsubscribe(database) -> None:
    with database.connect() as conn:
        if conn.execute(sql.SQL("SELECT 1 FROM pg_subscription WHERE subname = %s"), [SUBSCRIPTION]).fetchone():
            name = sql.Identifier(SUBSCRIPTION)
            conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(name))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(name))


@contextlib.contextmanager
def price_feed(database) -> Iterator[None]:
    subscribe(database)
    try:
        yield
    finally:
        unsubscribe(database)


def replication_of_the_server(database) -> list[tuple[str, str]]:
    """Every logical slot and subscription on the server, with the database it belongs to."""
    return database.query(
        "SELECT 'slot ' || s.slot_name, s.database FROM pg_replication_slots s UNION ALL "
        "SELECT 'subscription ' || s.subname, d.datname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
        "ORDER BY 1")


# as replication_of_the_server lists each, and as a refusal names it
HELD = {"slot": ("slot " + SLOT, "logical replication slot %s (pgoutput, not in use)" % SLOT),
        "subscription": ("subscription " + SUBSCRIPTION, "subscription " + SUBSCRIPTION)}


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("held", ["slot", "subscription", "both"])
def test_a_swap_of_a_database_with_a_slot_or_a_subscription_is_refused_before_anything_is_written(
        swappable, tmp_path, held, check):
    """Both belong to the database by OID: swapped out under its kept name, the pipeline would no longer find its
    slot (and the next swap would drop it with the kept database), and the subscription would go on applying its
    changes there."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with contextlib.ExitStack() as stack:
        if held != "subscription":
            stack.enter_context(logical_slot(data, SLOT))
        if held != "slot":
            stack.enter_context(price_feed(data))
        before, replication = table_fingerprints(data), replication_of_the_server(data)
        refused = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), mode="swap")
        assert refused["failed"] is True and "Traceback" not in refused["_raw"], refused
        kinds = ["slot", "subscription"] if held == "both" else [held]
        them = "them" if held == "both" else "it"
        assert refused["msg"] == (
            "mode=swap gives the name of database %s to a new database, but the old one holds %s, which would stay "
            "with it under its kept name, out of reach of whatever uses %s; use mode=in_place (the database keeps %s, "
            "and a slot's consumer reads the restore's changes), or drop %s and create %s again after the swap" % (
                data.name, ", ".join(HELD[kind][1] for kind in kinds), *[them] * 4)), refused["msg"]
        assert table_fingerprints(data) == before and not databases_like(data, "_")
        assert replication_of_the_server(data) == replication == [(HELD[kind][0], data.name) for kind in kinds]


def test_a_slot_created_while_a_swap_restores_stops_it_before_the_rename(swappable, tmp_path, monkeypatch):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    pipeline = contextlib.ExitStack()
    checked = swap_module.restored_problems

    def the_pipeline_starts(*args, **kwargs):  # after the checks before the restore, before the swap
        pipeline.enter_context(logical_slot(data, SLOT))
        return checked(*args, **kwargs)
    monkeypatch.setattr(swap_module, "restored_problems", the_pipeline_starts)
    with pipeline:
        refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
        assert refused["failed"] is True and "Traceback" not in refused["_raw"], refused
        assert refused["msg"].startswith("mode=swap gives the name of database %s to a new database, but the old one "
                                         "holds %s, which would stay" % (data.name, HELD["slot"][1])), refused["msg"]
        assert table_fingerprints(data) == before and not databases_like(data, "_")
        assert replication_of_the_server(data) == [(HELD["slot"][0], data.name)]


@contextlib.contextmanager
def published(database) -> Iterator[None]:
    """What the pipeline reads through its slot: every table, and the artifacts on their own (in the backup too)."""
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE PUBLICATION cdc FOR ALL TABLES"))
        conn.execute(sql.SQL('CREATE PUBLICATION artifacts FOR TABLE "Artifact"'))
    yield
    with database.connect() as conn:
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS cdc, artifacts"))


def publications_of(database) -> list[tuple]:
    return database.query("SELECT p.oid, p.pubname, t.tablename FROM pg_publication p "
                          "LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname AND NOT p.puballtables "
                          "ORDER BY 2")


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_an_in_place_restore_keeps_the_slot_and_the_publications_its_consumer_reads(data, tmp_path, fmt):
    """pg_restore --clean would drop each publication and create it again at the end of the restore's transaction:
    the consumer would decode the rows restored in between, find no publication of that name, and fail on them for
    good."""
    with published(data):
        call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
        expected, publications = app_fingerprints(data), publications_of(data)
        with logical_slot(data, SLOT):
            data.query('DELETE FROM "Artifact" RETURNING 1')
            restored = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False)
            assert "failed" not in restored, restored.get("msg")
            assert app_fingerprints(data) == expected
            assert publications_of(data) == publications  # the same ones (same OIDs), the artifacts' table in its own
            assert replication_of_the_server(data) == [(HELD["slot"][0], data.name)]
            read = data.query("SELECT count(*) FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, "
                              "'proto_version', '1', 'publication_names', 'cdc,artifacts')", (SLOT,))
    assert read[0][0] > 0  # the deletion and the restore's rows, for the pipeline to pass on


@pytest.mark.parametrize("slot", [True, False], ids=["slot", "no slot"])
def test_a_publication_of_all_tables_kept_in_place_takes_no_tables_from_the_dump(data, tmp_path, slot):
    """The backup's publication listed its tables; the database's now publishes all of them. While the slot reads
    it, it is kept, and the dump's tables are not added to it (the server refuses that). With no slot, the dump's
    replaces it."""
    with data.connect() as conn:
        conn.execute(sql.SQL('CREATE PUBLICATION cdc FOR TABLE "Artifact"'))
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with data.connect() as conn:
        conn.execute(sql.SQL("DROP PUBLICATION cdc"))
        conn.execute(sql.SQL("CREATE PUBLICATION cdc FOR ALL TABLES"))
    expected = app_fingerprints(data)
    with logical_slot(data, SLOT) if slot else contextlib.nullcontext():
        restored = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False)
        assert "failed" not in restored, restored.get("msg")
        assert app_fingerprints(data) == expected
        published = data.query("SELECT p.puballtables, array_agg(t.tablename::text ORDER BY t.tablename) "
                               "FROM pg_publication p LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname "
                               "WHERE p.pubname = 'cdc' GROUP BY 1")
        if slot:
            assert published[0][0] is True
            assert data.query("SELECT count(*) FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, "
                              "'proto_version', '1', 'publication_names', 'cdc')", (SLOT,))[0][0] > 0
        else:
            assert published == [(False, ["Artifact"])]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_plain_dump_that_replaces_publications_a_slot_reads_is_refused_in_place(data, tmp_path, check):
    with published(data):
        made = call(phoenix_backup.main, data, dest=str(tmp_path), format="plain")
        before, publications = table_fingerprints(data), publications_of(data)
        with logical_slot(data, SLOT):
            refused = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), safety_backup=False)
            assert refused["failed"] is True and "Traceback" not in refused["_raw"], refused
            assert refused["msg"] == (
                "restoring backup %s over database %s would drop and create publications artifacts, cdc, and logical "
                "replication slot %s reads this database: its consumer would fail for good on the rows restored in "
                "between; restore a custom or directory backup (they keep the database's publications)"
                % (made["backup"]["id"], data.name, SLOT)), refused["msg"]
            assert table_fingerprints(data) == before and publications_of(data) == publications
        restored = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), safety_backup=False)
        assert "failed" not in restored, restored.get("msg")  # no slot reads it: nothing to break


@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_a_backup_holds_no_subscription_nor_its_publishers_password(data, tmp_path, fmt):
    with price_feed(data):
        made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, compress="none")
    assert "failed" not in made, made.get("msg")
    backup = store.find_backup(tmp_path, "BETA", made["backup"]["id"])
    with encryption.readable(backup, None) as files, data.connect() as conn:
        toc = restore_module.dump_toc(server_major(conn), backup, files)
    assert [line for line in toc if " SUBSCRIPTION " in line] == [] and any(" TABLE " in line for line in toc)
    stored = [path for path in backup.path.rglob("*") if path.is_file()]
    assert stored and not [path for path in stored if PUBLISHERS_PASSWORD.encode() in path.read_bytes()]


def older_release_backup(data, dest, fmt: str, monkeypatch) -> dict:
    """A backup as releases before this one took them, holding the database's subscriptions."""
    monkeypatch.setattr(dump_module, "LEFT_OUT", ())
    made = call(phoenix_backup.main, data, dest=str(dest), format=fmt)
    monkeypatch.undo()
    return made


def subscription_warning() -> str:
    return ("subscription %s (of postgres) of the dump was not restored: a restore leaves logical replication as the "
            "database has it; create it by hand where the database should subscribe" % SUBSCRIPTION)


@pytest.mark.parametrize("fmt", ["custom", "directory"])
@pytest.mark.parametrize("target", ["in_place", "swap", "drill"])
def test_a_dumps_subscription_is_left_out_of_a_restore_with_a_warning(swappable, tmp_path, fmt, target, monkeypatch):
    """In place, DROP SUBSCRIPTION may not run in the restore's transaction, and the database keeps its own; beside
    it (a swap, a drill), a restored subscription would pull the publisher's changes into the new database, and
    keep the server from dropping it."""
    data = swappable
    with price_feed(data):
        older_release_backup(data, tmp_path, fmt, monkeypatch)
    expected = app_fingerprints(data)
    with price_feed(data) if target != "swap" else contextlib.nullcontext():
        replication = replication_of_the_server(data)
        if target == "drill":
            done = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
            assert done.get("passed") is True, done
        else:
            done = call(phoenix_restore.main, data, dest=str(tmp_path), mode=target, safety_backup=False)
            assert "failed" not in done, done.get("msg")
            assert app_fingerprints(data) == expected
        assert subscription_warning() in [w["event"]["msg"] for w in done.get("warnings", [])], done
        assert replication_of_the_server(data) == replication  # only the database's own, if it has one
        assert databases_like(data, "_phoenix_restore") == [] and data.query(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (scratch_name(SCRATCH_PREFIX, data.name),)) == [(0,)]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("target", ["in_place", "swap", "drill"])
def test_a_plain_dumps_subscription_is_refused_before_anything_is_written(swappable, tmp_path, target, check,
                                                                          monkeypatch):
    data = swappable
    with price_feed(data):
        made = older_release_backup(data, tmp_path, "plain", monkeypatch)
    before = table_fingerprints(data)
    if target == "drill":
        refused = call(phoenix_restore_drill.main, data, check=check, dest=str(tmp_path))
        purpose = "a drill of backup %s" % made["backup"]["id"]
    else:
        refused = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), mode=target)
        purpose = "restoring backup %s %s database %s" % (made["backup"]["id"], "beside" if target == "swap" else
                                                          "over", data.name)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"], refused
    assert refused["msg"] == (
        "%s would create subscription %s (of postgres): a plain dump's script cannot leave subscriptions out, and one "
        "would pull its publisher's changes into the restored database; restore a custom or directory backup (they "
        "restore without subscriptions)" % (purpose, SUBSCRIPTION)), refused["msg"]
    assert table_fingerprints(data) == before and not databases_like(data, "_")
    assert replication_of_the_server(data) == []
