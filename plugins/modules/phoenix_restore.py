#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_restore
short_description: Restore a verified backup atomically - in one transaction, or in parallel into a new database swapped in
version_added: 0.1.0
description:
  - Verifies the backup's checksums (and C(pg_restore --list)) and refuses one that fails. With
    O(backup_signing_key), first checks the manifest's signature. The format comes from the manifest only; a plain
    dump holding psql meta-commands that pg_dump never writes is refused.
  - Takes a safety backup of kind C(pre-restore) first, unless O(safety_backup=false).
  - Restores with C(pg_restore --single-transaction --exit-on-error --clean), so a restore that fails part-way
    leaves the database as it was. The audit log and the stage fence are kept out of the restore.
  - The restored objects of a custom or directory dump go back to the roles that owned them, when those roles
    exist on the server and the restoring role is a superuser or may act as each of them (C(SET ROLE); a member
    of the application's owner role, say). A plain dump sets its owners itself. Otherwise the restoring role owns
    them, and a warning names whose they were.
  - Extensions the database already has are kept as they are, not dropped and created again (with their
    comments). A superuser often installed them, and only their owner may drop them; so the application's owner
    role can restore. O(mode=swap) creates the dump's extensions in the new database; a role that is not a
    superuser may create only trusted ones (such as C(pgcrypto), C(pg_trgm), C(citext)), and any other is named
    before anything is written, in check mode too.
  - With O(mode=swap), the backup is restored with C(pg_restore -j) into a new database on the same server, its row
    counts and schema version checked against the manifest, the audit log and stage fence carried over (the fence
    must still name O(stage)), and then it takes the environment database's name in one transaction, after the
    sessions of the old one are terminated (stop the application first). The old database is kept as
    C(<name>_pre_restore_<UTC time>), with a comment that starts with C(phoenix.platform kept database), until the
    next successful swap, which drops only kept databases with that comment and warns about any other of such a
    name. It takes the place of a safety backup (a name too long for an identifier is shortened and followed by a
    digest of the whole name, so databases named alike keep names of their own). Killed at any point, the
    environment's database is the old one or the new one; a half-restored new database is dropped by the next run,
    but only one a restore made, which carries a comment that starts with C(phoenix.platform scratch database) until
    it is swapped in; a database of that name without it fails the restore (in check mode too) and is left as it
    is, unless it holds no object at all (as a run killed while the server created it leaves it). Needs the
    CREATEDB right, ownership of the database (or a superuser), the right to end every session in it (sessions of
    its own roles, of others with C(pg_signal_backend), of a superuser only as a superuser; autovacuum
    is ended by the server itself) and a connection to the server's C(postgres) or C(template1) database, all
    checked first (in check mode too). The new database gets the old one's tablespace, encoding, locale, owner,
    connection limit, privileges, comment and settings (C(ALTER DATABASE ... SET) and C(ALTER ROLE ... IN DATABASE
    ... SET)); settings the restoring role may not give stop the swap before it restores. The comment, connection
    limit and settings are given as the names are swapped, so they do not bind the restore's own sessions.
  - Two swaps of the same database do not overlap. The second waits for the first (an advisory lock on the server's
    maintenance database) up to O(lock_timeout) seconds, then fails naming the lock, before it checks or writes
    anything. So it never takes the first one's new database for a leftover of a killed run.
  - A role that is not a superuser cannot replace what a DBA added as one. A custom or directory dump that holds an
    event trigger or a foreign-data wrapper (only a superuser creates them), or a publication, foreign server or
    user mapping of a role it may not act as, is refused before anything is written (in check mode too), with
    each named. Restore it as a superuser. Over the database (V(in_place)), so are the dump's schemas, tables,
    views, sequences, functions and types that are in the database under a role it may not act as, since
    C(--clean) drops each first, which only its owner may. A publication that a logical slot reads is no obstacle
    there, since an archive's in-place restore keeps it (see below).
  - A database that holds a prepared transaction (two-phase commit that its coordinator never decided) is refused in
    either mode, in check mode too, with a message naming each. It keeps its locks until someone commits or rolls
    it back, so an in-place restore would wait on it without end, and the server renames no database that holds
    one. One prepared while a swap restores stops the swap at its first rename.
  - Logical replication stays as the database has it. A database with a logical replication slot (what a change
    data capture pipeline reads) or a subscription is refused by O(mode=swap), in check mode too, naming them, as they
    belong to the old database, and would stay with it under its kept name. V(in_place) keeps them, and a slot's
    consumer reads the restore's changes. While a logical slot reads the database, it keeps the database's
    publications too (the tables the dump adds to them are added, but to one of all tables), since one dropped and
    created again by the restore would make the consumer fail for good on the rows restored in between; a plain
    dump, which would, is refused in place then. A dump's subscriptions (a superuser's dump holds them) are not restored,
    with a warning naming them; a plain dump holding one is refused before anything is written.
  - Over the database (V(in_place)), the restore waits O(lock_timeout) seconds at most for each table that another
    session holds (a console left in a transaction after a query, an application still running). It is then
    stopped, its transaction is rolled back, and the message names the table and who holds it. pg_restore and psql
    set no limit of their own. A session of its own watches them, connected before the restore starts; a watch that
    cannot connect stops the restore there, with the database as it was. A watch whose session is ended part-way
    (an idle-session killer, say) connects again and watches on.
  - Large objects (C(lo_create), an C(oid) column pointing at one) come back as the backup has them. Over the database
    (V(in_place)), every large object is unlinked first, in the restore's transaction, and the dump's are created
    again; one made since the backup is not left behind. For a custom or directory dump, the restore then runs as
    pg_restore's script through psql (one transaction, as always). Only a large object's owner or a superuser may
    unlink it, so a role that may not unlink one is refused before anything is written (in check mode too), with
    their number and owners. A swap and a drill check the number of large objects against the manifest (backups
    taken before it was recorded have none to compare).
  - A restore counts the rows of every table, to report what it changes (and with O(mode=swap) to check the new
    database against the manifest). A role whose queries a table's row-level security policies would filter (any
    role but a superuser, one with C(BYPASSRLS), and the table's owner unless the table forces row security) is
    refused before anything is written, in check mode too, naming the tables.
  - An encrypted backup needs O(backup_identity). With O(encrypt_to), the safety backup is encrypted too.
  - A restore is an action, so it always reports a change.
options:
  backup:
    description:
      - V(latest), a backup id under O(dest), or the path of a backup directory.
      - V(latest) is the newest backup that is not a safety backup (kinds C(pre-restore) and C(pre-deploy)), so
        running the same restore twice restores the same backup twice; safety backups are restored by id.
    type: str
    default: latest
  dest:
    description: Backup root (for V(latest), ids and the safety backup). Falls back to E(PHOENIX_BACKUP_DIR).
    type: path
  safety_backup:
    description: Take a C(pre-restore) backup before restoring.
    type: bool
    default: true
  mode:
    description:
      - V(in_place) restores over the database in one transaction; V(swap) restores beside it in parallel and
        swaps the databases' names.
      - A swap holds a second copy of the database while it restores. It first checks the server's disk for room
        for it (the backup's database size, and as much WAL, up to C(max_wal_size)) and refuses, in check mode
        too, when there is none. Only a server on this host (a Unix socket or the loopback address) that shows the
        role where its files are (superuser or C(pg_read_all_settings)) can be checked; otherwise the swap warns
        and goes ahead.
      - The sessions a restore opens beside the run's own count against the role's C(CONNECTION LIMIT) (and, in
        place, the database's). In place, one for pg_restore (or psql) and one that watches its lock waits (none
        with O(lock_timeout=0)); a swap, one per job and one for pg_restore's leader, and two as it carries the history
        over. A restore whose limit leaves no room for them is refused before anything is written.
    type: str
    choices: [in_place, swap]
    default: in_place
  jobs:
    description:
      - Parallel pg_restore jobs with O(mode=swap) (custom and directory formats). Default one per CPU, at most 4.
      - pg_restore gives each table one connection. From a directory dump, a table too big for one job (its data file
        more than 1/O(jobs) of the dump, and at least 16 MB) is loaded over O(jobs) connections at once
        (pg_restore writes its COPY, whose rows are cut between lines), after the definitions and the other tables'
        rows, before the indexes, constraints and triggers. Its row count, checked against the manifest, is the one
        the server reports as those COPYs end (the table is not counted again). The module reads those rows from
        the data file itself when it can decompress it (gzip, none, zstd when the C(zstandard) Python library is
        installed, and lz4 when the C(lz4) one is), so no pg_restore decompresses them into a pipe for it;
        otherwise pg_restore does.
      - pg_restore 17 and newer opens its sessions with a setting (C(transaction_timeout)) older servers reject. A
        backup such a pg_dump wrote (zstd or lz4) for an older server is restored in place as a script through
        psql, without that setting, in one transaction; a swap restores it in parallel and forgives that one
        error, and no other.
      - Left to choose, with a warning, only as many jobs as the role's C(CONNECTION LIMIT) leaves room for beside
        the run's own session (a job is a connection, and pg_restore's leader is counted beside them until its
        process has exited; the new database has no limit of its own until the swap gives it the old one's). The
        old database's rows are then counted before the jobs start, not on one more connection beside them. Given,
        the jobs are used as they are.
    type: int
  allow_prod:
    description: Allow restoring in PROD.
    type: bool
    default: false
  allow_cross_stage:
    description: Allow restoring a backup taken in another stage (the stage fence keeps this database's stage).
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.backup_signing
  - phoenix.platform.backup_encryption
  - phoenix.platform.backup_encryption.IDENTITY
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Verifies the backup and returns the per-table row-count difference between now and the backup.
  diff_mode:
    support: full
    details: Shows the row count of every table the restore changes, now (before) and from the backup (after).
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Restore the newest BETA backup
  phoenix.platform.phoenix_restore:
    dest: /var/backups/phoenix
    backup: latest

- name: Restore in parallel into a new database and swap it in (the application is stopped)
  phoenix.platform.phoenix_restore:
    dest: /var/backups/phoenix
    mode: swap
"""

RETURN = r"""
restored:
  description: The backup restored (or that would be, in check mode).
  returned: success
  type: dict
safety_backup:
  description: The pre-restore backup taken first, or null (always with O(mode=swap)).
  returned: success
  type: dict
jobs:
  description: The pg_restore jobs of O(mode=swap) (or that would be, in check mode).
  returned: with O(mode=swap)
  type: int
kept_database:
  description:
    - The old database, renamed, that O(mode=swap) keeps until its next successful swap.
    - A database name too long to be kept whole is shortened and followed by C(_) and 8 hex digits of its SHA-256.
  returned: with O(mode=swap), not in check mode
  type: str
  sample: shop_pre_restore_20261124013000
dropped_kept:
  description:
    - Databases kept by earlier swaps, dropped by this one (in check mode, those it would drop).
    - One the role may not drop (another role owns it) is left, with a warning (in check mode too); the restore
      still succeeded.
  returned: with O(mode=swap)
  type: list
  elements: str
leftover_removed:
  description: Whether a half-restored database of a killed swap was dropped first.
  returned: with O(mode=swap), not in check mode
  type: bool
row_changes:
  description: Per table whose row count differs, C(now), C(backup) and C(difference).
  returned: success
  type: dict
  sample: {"Artifact": {"now": 160, "backup": 156, "difference": -4}}
large_object_changes:
  description:
    - When the restore changes the number of large objects, C(now), C(backup) and C(difference); empty when it does
      not, or when the backup's manifest does not record them.
    - C(--diff) shows them as C(large_objects) beside the row counts.
  returned: success
  type: dict
  sample: {"now": 5, "backup": 3, "difference": -2}
"""

from pathlib import Path

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import ALLOW_PROD_OPTIONS, LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import RestoreRequest, restore
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import conninfo_reached
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule


def run(module: PhoenixModule) -> dict:
    params = module.params
    request = RestoreRequest(
        backup=params["backup"], dest=Path(params["dest"]) if params["dest"] else None, stage=module.stage,
        actor=module.actor, safety_backup=params["safety_backup"], allow_prod=params["allow_prod"],
        allow_cross_stage=params["allow_cross_stage"], signing_key=params["backup_signing_key"],
        identity=params["backup_identity"], encrypt_to=params["encrypt_to"], mode=params["mode"],
        jobs=params["jobs"], lock_timeout=params["lock_timeout"],
    )
    with module.fenced_connection() as conn:
        return restore(conn, conninfo_reached(conn), request, module.check_mode)


def main() -> None:
    module = PhoenixModule(
        state_paths=("dest",),  # the safety backup is written there
        argument_spec={
            "backup": {"type": "str", "default": "latest"},
            "dest": {"type": "path", "fallback": (env_fallback, ["PHOENIX_BACKUP_DIR"])},
            "safety_backup": {"type": "bool", "default": True},
            **ALLOW_PROD_OPTIONS,
            "allow_cross_stage": {"type": "bool", "default": False},
            "mode": {"type": "str", "choices": ["in_place", "swap"], "default": "in_place"},
            "jobs": {"type": "int"},
            **LOCK_OPTIONS,
            **encryption.RECIPIENT_OPTIONS,
            **encryption.IDENTITY_OPTIONS,
            **store.SIGNING_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
