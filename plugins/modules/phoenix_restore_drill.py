#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_restore_drill
short_description: Prove a backup restores, in a scratch database that is checked and dropped
version_added: 0.1.0
description:
  - Restores a backup (by default the newest one that is not a safety backup) into a scratch database on the same
    server, named C(phoenix_drill_<database>), compares the row count of every table with the backup's manifest,
    and runs the schema, stage and world checks of M(phoenix.platform.phoenix_health) on it.
  - The scratch database is dropped when the drill ends, passed or failed. A drill killed half-way leaves it
    behind; the next drill drops it before it starts and says so in RV(leftover_removed). Only a database a drill
    made is dropped so, one whose comment starts with C(phoenix.platform scratch database); a database of that
    name without it fails the drill (in check mode too) and is left as it is, unless it holds no object at all (as
    a drill killed while the server created it leaves it).
  - Two drills of the same database do not overlap. The second waits for the first (an advisory lock in the
    database) up to O(lock_timeout) seconds, then fails naming the lock, before it checks or creates anything. So it
    never takes the first one's scratch database for a leftover.
  - Before it creates the scratch database, the drill checks the server's disk for room for it (the backup's
    database size, and as much WAL up to C(max_wal_size), since a full WAL disk stops the whole server) and
    refuses when there is none. Only a server on this host that shows the role where its files are (superuser or
    C(pg_read_all_settings)) can be checked; otherwise the drill warns and goes ahead.
  - The environment's database is only read (to check its stage fence), so a drill needs no C(allow_prod) in
    PROD. The connecting role needs the CREATEDB privilege, and, unless it is a superuser, every extension of the
    dump must be trusted (such as C(pgcrypto)); any other is named before the scratch database is created. So is
    an event trigger or foreign-data wrapper of the dump (only a superuser creates them), and a publication,
    foreign server or user mapping of a role it may not act as.
  - The dump's subscriptions are not restored into the scratch database (a warning names them), where one would
    keep the server from dropping it; a plain dump holding one is refused before the scratch database is created.
  - Row counts are taken with row security off. When a table's row-level security policies would filter what the
    drilling role reads of the scratch database (a table that forces row security, say), the drill fails naming the
    table and the fix (C(BYPASSRLS), or a superuser), instead of calling the backup short of rows.
  - A drill leaves nothing behind, so it never reports a change. It fails when the drill does, with its problems.
options:
  backup:
    description: V(latest), a backup id under O(dest), or the path of a backup directory.
    type: str
    default: latest
  dest:
    description: Backup root. Falls back to E(PHOENIX_BACKUP_DIR).
    type: path
  max_worlds:
    description: The world limit the restored database is checked against.
    type: int
    default: 50
  jobs:
    description:
      - Parallel pg_restore jobs (custom and directory formats), as O(phoenix.platform.phoenix_restore#module:jobs)
        with O(phoenix.platform.phoenix_restore#module:mode=swap). Nobody uses the scratch database, so it need not
        be restored in one transaction.
      - From a directory dump, a table too big for one job is loaded over O(jobs) connections at once, and its row
        count is the one the server reports as those COPYs end.
      - V(1) restores in one transaction, as O(phoenix.platform.phoenix_restore#module:mode=in_place) does.
      - Default one per CPU, at most 4; but 1 for an encrypted custom-format backup. pg_restore seeks in a dump it
        restores in parallel, so such a dump would first be decrypted to a private file beside it (see
        O(backup_identity)); in one transaction it comes through a pipe, and is never on disk decrypted.
      - Left to choose, with a warning, only as many jobs as the role's C(CONNECTION LIMIT) leaves room for beside
        the drill's own session (a job is a connection, and pg_restore's leader is counted beside them; the scratch
        database has no limit of its own). Given, the jobs are used as they are.
    type: int
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.backup_signing
  - phoenix.platform.backup_encryption.IDENTITY
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Finds and verifies the backup (checksums, signature) and creates nothing.
  diff_mode:
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Restore drill of the newest PROD backup (no allow_prod needed)
  phoenix.platform.phoenix_restore_drill:
    dest: /var/backups/phoenix
  register: drill
"""

RETURN = r"""
passed:
  description: Whether the backup restored and every check held; null in check mode.
  returned: success
  type: bool
backup:
  description: The backup drilled.
  returned: success
  type: dict
scratch_database:
  description: The database the backup was restored into (dropped again).
  returned: success
  type: str
  sample: phoenix_drill_phoenix_prod
leftover_removed:
  description: Whether a scratch database left by a killed drill was found and dropped first.
  returned: success
  type: bool
checks:
  description: The health checks of the restored database (database, schema, stage, worlds).
  returned: when the restore succeeded
  type: dict
problems:
  description: What failed, one line each; empty when the drill passed.
  returned: always
  type: list
  elements: str
jobs:
  description: The pg_restore jobs the backup was restored with.
  returned: when the backup was restored
  type: int
duration_seconds:
  description: How long the drill took, from finding the backup to dropping the scratch database.
  returned: when not in check mode
  type: float
"""

from pathlib import Path

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import DrillRequest, drill
from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import conninfo_reached
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._health.checks import HealthRequest, collect
from ansible_collections.phoenix.platform.plugins.module_utils._schema.migrations import LATEST_VERSION, pending

try:
    import psycopg
except ImportError:  # PhoenixModule reports the missing library
    pass

# What a drill reports of a restored database: not its backups or its server's sessions
DRILL_CHECKS = ("database", "schema", "stage", "worlds")


def run(module: PhoenixModule) -> dict:
    params = module.params
    with module.fenced_connection(writes=False) as conn:  # the stage fence holds; nothing else is read there
        module.check_writable(conn)  # the scratch database is created on this server
        conninfo = conninfo_reached(conn)

    def inspect(conninfo: str) -> dict:
        request = HealthRequest(stage=module.stage, detail=False, backup_dir=None, backup_max_age_hours=0,
                                max_worlds=params["max_worlds"], record=False, check_mode=True, backup_times=[],
                                latest_version=LATEST_VERSION, pending_migrations=pending)
        report, _recorded = collect(lambda: psycopg.connect(conninfo), request)
        return {name: check for name, check in report["checks"].items() if name in DRILL_CHECKS}

    request = DrillRequest(backup=params["backup"], dest=Path(params["dest"]) if params["dest"] else None,
                           stage=module.stage, signing_key=params["backup_signing_key"],
                           identity=params["backup_identity"], jobs=params["jobs"],
                           lock_timeout=params["lock_timeout"])
    result = drill(conninfo, request, module.check_mode, inspect)
    if result["problems"]:
        raise PhoenixError("restore drill of %s failed: %s" % (result["backup"]["id"], "; ".join(result["problems"])),
                           **result)
    return result


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "backup": {"type": "str", "default": "latest"},
            "dest": {"type": "path", "fallback": (env_fallback, ["PHOENIX_BACKUP_DIR"])},
            "max_worlds": {"type": "int", "default": 50, "fallback": (env_fallback, ["PHOENIX_WORLD_MAX_PER_ENV"])},
            "jobs": {"type": "int"},
            **LOCK_OPTIONS,
            **store.SIGNING_OPTIONS,
            **encryption.IDENTITY_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
