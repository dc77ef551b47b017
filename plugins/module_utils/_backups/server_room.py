# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Room on the server's disks for a swap, which holds a second copy of the database while it restores.

A full disk under the new database fails the restore, and the swap drops it; a full disk under ``pg_wal`` stops
the whole server, every database on it included. So a swap first checks the free space where the new database
and the WAL go. Only the server can see its disks: the check runs when the server is on this host (reached
through a Unix socket or the loopback address) and shows where its files are (superuser or
``pg_read_all_settings``); otherwise the swap goes ahead unchecked, and says so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

LOOPBACK = ("localhost", "127.0.0.1", "::1")
MARGIN = 1.1  # a restored database is about as big as the one backed up; indexes rebuilt fresh may differ a little


def require_room(admin, backup: store.Backup, database: str, tablespace_of: str, advice: str) -> str | None:
    """Refuse to restore ``backup`` of ``database`` into a new database in the tablespace of ``tablespace_of``
    when the server's disks have no room for it (the message ends with ``advice``). Returns why the room could
    not be checked, or None when it was."""
    host = admin.info.host
    if not (host.startswith("/") or host in LOOPBACK):
        return "the server runs on %s, not on this host" % host
    backup_size = backup.manifest.get("database_size")
    if backup_size is None:  # a manifest older than the field: the database as it is now stands in
        backup_size = admin.execute(sql.SQL("SELECT pg_database_size(%s)"), [database]).fetchone()[0]
    # pg_settings leaves data_directory out for a role that may not read it
    data_directory, location, max_wal = admin.execute(sql.SQL(
        "SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory'), "
        "pg_tablespace_location(dattablespace), pg_size_bytes(current_setting('max_wal_size')) "
        "FROM pg_database WHERE datname = %s"), [tablespace_of]).fetchone()
    if data_directory is None:
        return "the server does not show this role where its files are (superuser or pg_read_all_settings)"
    files = Path(location or Path(data_directory, "base"))
    wal = Path(data_directory, "pg_wal")
    if not files.is_dir() or not wal.is_dir():
        return "the server's directory %s is not on this host" % data_directory
    copy = int(backup_size * MARGIN)
    logged = min(copy, max_wal)  # the load writes about as much WAL, recycled by checkpoints past max_wal_size
    needs = {files: copy}
    if os.stat(wal).st_dev == os.stat(files).st_dev:
        needs[files] += logged
    else:
        needs[wal] = logged
    for path, needed in needs.items():
        free = shutil.disk_usage(path).free
        if free < needed:
            raise PhoenixError(
                "restoring backup %s beside database %s needs about %s free at %s on the server (the backup's "
                "database of %s, and as much WAL, up to max_wal_size); %s are free. Free some space, or %s"
                % (backup.id, database, _size(needed), path, _size(backup_size), _size(free), advice))
    return None


def _size(count: int) -> str:
    return "%.1f GB" % (count / 1e9) if count >= 1e9 else "%.0f MB" % (count / 1e6)
