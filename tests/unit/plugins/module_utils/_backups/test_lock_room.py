"""Which entries of a dump's list create a relation (each a lock in an in-place restore's transaction), and the
ways out named when the server's lock table was full."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._backups.lock_room import (
    CREATES_RELATION,
    TABLE_ENTRY,
    WAYS_OUT,
    dump_explained,
    explained,
)

LISTED = {  # pg_restore --list lines, as pg_dump 15 writes them, and whether each creates a relation
    "215; 1259 16390 TABLE tenant_001 t0 postgres": True,
    "216; 1259 16395 TABLE \"tenant 2\" \"TABLE DATA\" postgres": True,
    "3390; 0 16390 TABLE DATA tenant_001 t0 postgres": False,
    "217; 1259 16401 SEQUENCE public orders_id_seq shop_owner": True,
    "3398; 0 0 SEQUENCE SET public orders_id_seq shop_owner": False,
    "218; 1259 16402 SEQUENCE OWNED BY public orders_id_seq shop_owner": False,
    "219; 1259 16410 VIEW public order_totals shop_owner": True,
    "220; 1259 16415 MATERIALIZED VIEW public daily shop_owner": True,
    "3400; 0 16415 MATERIALIZED VIEW DATA public daily shop_owner": False,
    "3236; 2606 16396 CONSTRAINT tenant_001 t0 t0_pkey postgres": True,
    "3240; 2606 16420 FK CONSTRAINT public orders orders_user_fkey shop_owner": False,
    "3237; 1259 16421 INDEX public orders_placed_idx shop_owner": True,
    "3238; 0 0 INDEX ATTACH public events_2026_pkey shop_owner": False,
    "5; 2615 2200 SCHEMA - public pg_database_owner": False,
    "2; 3079 16384 EXTENSION - pg_trgm ": False,
    "3250; 2620 16430 TRIGGER public orders orders_audit shop_owner": False,
}


def test_entries_that_create_a_relation():
    assert {line: bool(CREATES_RELATION.match(line)) for line in LISTED} == LISTED


def test_the_dumps_tables_are_read_by_name_unless_a_name_holds_a_space():
    named = [TABLE_ENTRY.match(line) for line in LISTED]
    assert [entry.groups() for entry in named if entry] == [("tenant_001", "t0")]


def test_a_full_lock_table_is_explained_and_other_failures_are_left_as_they_are():
    full = ("pg_restore failed (exit 1), the database was left as it was: pg_restore: error: could not execute "
            "query: ERROR:  out of shared memory\nHINT:  You might need to increase max_locks_per_transaction.")
    assert explained(full) == full + (" (the restore's one transaction locks every object it drops or creates, and "
                                      "the server's lock table was full: %s)" % WAYS_OUT)
    other = "pg_restore failed (exit 1), the database was left as it was: ERROR:  relation \"x\" does not exist"
    assert explained(other) == other


def test_a_backup_that_ran_out_of_locks_is_told_the_ways_out_for_its_jobs():
    full = ("pg_dump failed (exit 1): pg_dump: error: query failed: ERROR:  out of shared memory\nHINT:  You might "
            "need to increase max_locks_per_transaction.")
    assert dump_explained(full, 1) == full + (" (pg_dump holds a lock on every table until it ends, and the server's "
                                              "lock table was full: raise max_locks_per_transaction (a server "
                                              "restart))")
    assert dump_explained(full, 3) == full + (" (pg_dump holds a lock on every table until it ends, and its 3 jobs "
                                              "another on each table they dump, and the server's lock table was "
                                              "full: back up with jobs=1, or raise max_locks_per_transaction (a "
                                              "server restart))")
    other = "pg_dump failed (exit 1): pg_dump: error: connection to server failed"
    assert dump_explained(other, 3) == other


def test_a_parallel_job_refused_its_lock_is_told_both_causes():
    """A job's LOCK TABLE ... NOWAIT fails alike when someone waits for an ACCESS EXCLUSIVE lock and when the lock
    table is full, and pg_dump names only the first."""
    refused = ("pg_dump failed (exit 1): pg_dump: error: could not obtain lock on relation \"tenant_887.t7\"\nThis "
               "usually means that someone requested an ACCESS EXCLUSIVE lock on the table after the pg_dump parent "
               "process had gotten the initial ACCESS SHARE lock on the table.\npg_dump: error: a worker process died "
               "unexpectedly")
    assert dump_explained(refused, 2) == refused + (
        " (a job of a parallel pg_dump says so too when the server's lock table was full, as it locks each table a "
        "second time: back up with jobs=1, or raise max_locks_per_transaction (a server restart); or, if someone "
        "asked for an ACCESS EXCLUSIVE lock on that table, such as a migration, run it again once they are done)")
    assert dump_explained(refused, 1) == refused
