# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health checks recorded in ``phoenix.health_history``, read back for charts."""

from __future__ import annotations

from typing import Any

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
