# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an environment's records say about its past: recorded health checks, the last deploy, the last drill."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._metrics.textfile import path_of, read_samples
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import relation_exists

try:
    from psycopg import sql
    from psycopg.rows import dict_row
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def health_history(conn, days: int, max_points: int) -> list[dict[str, Any]]:
    """Recorded checks of the last ``days`` days, oldest first, thinned to at most ``max_points`` evenly spread
    points (a chart has no use for more, and a year of minute checks would not fit in a module result)."""
    if not relation_exists(conn, "phoenix.health_history"):
        return []
    query = sql.SQL("""
        WITH recent AS (
            SELECT checked_at, status, response_ms, checks -> 'worlds' AS worlds,
                   row_number() OVER (ORDER BY checked_at) AS position, count(*) OVER () AS total
            FROM phoenix.health_history
            WHERE checked_at >= now() - make_interval(days => %(days)s)
        )
        SELECT to_char(checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at,
               extract(epoch FROM checked_at)::float8 AS epoch, status, response_ms,
               (worlds ->> 'total')::int AS worlds_total, (worlds ->> 'active')::int AS worlds_active
        FROM recent
        WHERE total <= %(points)s OR position = total
           OR (position - 1) %% ceil(total::numeric / %(points)s)::bigint = 0
        ORDER BY checked_at""")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, {"days": days, "points": max_points}).fetchall()


def last_deploy(conn) -> dict[str, Any] | None:
    """The newest ``deploy.*`` event of the audit log (written by the deploy playbook), or None."""
    if not relation_exists(conn, "phoenix.audit_log"):
        return None
    query = sql.SQL("""
        SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, operation, actor, details
        FROM phoenix.audit_log WHERE operation LIKE %s ORDER BY at DESC, id DESC LIMIT 1""")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, ["deploy.%"]).fetchone()


def last_drill(metrics_dir: str, stage: str) -> dict[str, Any] | None:
    """The last restore drill as its metrics file tells it, or None when none ran."""
    path = path_of(Path(metrics_dir), stage, "restore_drill")
    if not path.is_file():
        return None
    samples = read_samples(path.read_text())
    if "phoenix_restore_drill_last_run_timestamp_seconds" not in samples:
        return None
    success_at = samples.get("phoenix_restore_drill_last_success_timestamp_seconds")
    return {"at": _iso(samples["phoenix_restore_drill_last_run_timestamp_seconds"]),
            "succeeded": samples.get("phoenix_restore_drill_last_run_success") == 1,
            "last_success_at": _iso(success_at) if success_at is not None else None,
            "duration_seconds": samples.get("phoenix_restore_drill_duration_seconds")}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
