# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The maintenance routine of the operations guide, planned from the server's statistics first.

Tables are vacuumed (with ANALYZE) when their dead rows pass the threshold or they were never analysed, so a
second run finds nothing to do. REINDEX runs CONCURRENTLY, so the tables stay writable. Sessions left idle in a
transaction hold locks and old snapshots; those older than the limit are terminated, never this session,
another Phoenix job's, or a replication connection. They are terminated first: REINDEX CONCURRENTLY waits for every
transaction that wrote to its table, and VACUUM cannot remove rows an old snapshot may still see. VACUUM and
REINDEX CONCURRENTLY cannot run inside a transaction, so the routine runs them one statement at a time: a killed
run leaves each table vacuumed or not. Each waits ``lock_timeout`` at most for its table (a migration holds it, an
application's transaction wrote to it); a table it cannot have is left for the next run, with a warning naming who
holds it. A REINDEX stopped that way leaves the new copy of an index, or the old one, invalid: it is dropped then, or
by the next REINDEX of the table, which would rebuild it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import table_label
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import MAY_END, described, table_holders

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

MIN_DEAD_ROWS = 50  # as autovacuum's threshold: a few dead rows in a small table are not worth a pass
PHOENIX_SESSIONS = "phoenix.platform.%"


@dataclass
class MaintenanceRequest:
    stage: str
    actor: str
    vacuum: bool = True
    dead_ratio: float = 0.1
    reindex: list[str] = field(default_factory=list)  # table labels
    terminate_idle_minutes: int | None = None
    allow_prod: bool = False
    lock_timeout: int = 60


# Whether someone holds table s exclusively, or waits to: its size, which opens the table, would wait too
HELD = ("SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = s.relid "
        "AND l.mode = 'AccessExclusiveLock' AND l.pid IS DISTINCT FROM pg_backend_pid()) AS held")


def table_report(conn) -> dict[str, dict[str, Any]]:
    """Per application table: rows, dead rows and their share (the server's estimate of table bloat), sizes, and
    when it was last vacuumed and analysed. The sizes of a table someone holds or awaits exclusively (a migration)
    are None: reading them would wait for it."""
    rows = conn.execute(sql.SQL(
        "SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, "
        "round(s.n_dead_tup::numeric / greatest(s.n_live_tup + s.n_dead_tup, 1), 4), "
        "CASE WHEN NOT held THEN pg_table_size(s.relid) END, CASE WHEN NOT held THEN pg_indexes_size(s.relid) END, "
        "greatest(s.last_vacuum, s.last_autovacuum), greatest(s.last_analyze, s.last_autoanalyze) "
        "FROM pg_stat_user_tables s, LATERAL (" + HELD + ") h ORDER BY 1, 2")).fetchall()
    return {table_label(schema, name): {
        "schema": schema, "table": name, "rows": live, "dead_rows": dead, "dead_ratio": float(ratio),
        "size_bytes": size, "index_bytes": index_size, "last_vacuum": _iso(vacuumed), "last_analyze": _iso(analysed)}
        for schema, name, live, dead, ratio, size, index_size, vacuumed, analysed in rows}


# Sessions of other clients in this database idle in a transaction for longer than some minutes (not phoenix's)
IDLE_SESSIONS = (
    "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid WHERE a.datname = current_database() "
    "AND a.backend_type = 'client backend' AND a.state IN ('idle in transaction', 'idle in transaction (aborted)') "
    "AND a.pid <> pg_backend_pid() AND a.application_name NOT LIKE %s "
    "AND now() - a.state_change > make_interval(mins => %s)")


# Sessions of roles in this database whose state pg_stat_activity hides from this role (it shows their state and
# backend type only to a superuser, a member of pg_read_all_stats, or a role the session's role is a member of)
HIDDEN_SESSIONS = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usesysid IS NOT NULL "
                   "AND backend_type IS NULL")


def plan(conn, request: MaintenanceRequest) -> dict[str, Any]:
    if not 0 <= request.dead_ratio <= 100:
        raise PhoenixError("dead_ratio must be from 0 to 100 (a share of the live rows, e.g. 0.1), got %s"
                           % request.dead_ratio)
    report = table_report(conn)
    unknown = sorted(set(request.reindex) - set(report))
    if unknown:
        raise PhoenixError("reindex names no table of this database: %s (tables are named as in the report, e.g. "
                           "%s)" % (", ".join(unknown), ", ".join(sorted(report)[:3]) or "none"))
    vacuum = [label for label, t in report.items() if request.vacuum and (
        t["dead_rows"] > MIN_DEAD_ROWS + request.dead_ratio * t["rows"] or (t["last_analyze"] is None and t["rows"]))]
    planned = {"report": report, "vacuum": vacuum, "reindex": sorted(set(request.reindex)), "terminate": []}
    if request.terminate_idle_minutes is not None:
        idle = conn.execute(sql.SQL(
            "SELECT a.pid, a.usename, a.application_name, round(extract(epoch FROM now() - a.state_change) / 60, 1), "
            + MAY_END + " " + IDLE_SESSIONS + " ORDER BY a.pid"), [PHOENIX_SESSIONS, request.terminate_idle_minutes])
        left = []
        for pid, user, application, minutes, may_end in idle:
            if may_end:
                planned["terminate"].append({"pid": pid, "user": user, "application": application,
                                             "idle_minutes": float(minutes)})
            else:
                left.append((user, application))
        warnings = []
        if left:
            warnings.append("%s idle in a transaction for longer than %d minutes were left: role %s may not end them "
                            "(a superuser's only a superuser, others' a member of pg_signal_backend)"
                            % (described(left), request.terminate_idle_minutes, conn.info.user))
        hidden = conn.execute(sql.SQL(HIDDEN_SESSIONS)).fetchone()[0]
        if hidden:
            warnings.append("the state of %d session(s) of other roles in this database is hidden from role %s, so "
                            "they were not looked at for idle transactions; make it a member of pg_read_all_stats"
                            % (hidden, conn.info.user))
        if warnings:
            planned["warnings"] = warnings
    return planned


def maintain(conn, request: MaintenanceRequest, check_mode: bool) -> dict[str, Any]:
    """Plan, then (unless check mode) terminate, vacuum and reindex; returns what was (or would be) done. ``conn``'s
    lock waits end after ``request.lock_timeout``, for the session (``PhoenixModule.connect``): the VACUUM and
    REINDEX run outside any transaction."""
    planned = plan(conn, request)
    conn.rollback()
    acts = bool(planned["vacuum"] or planned["reindex"] or planned["terminate"])
    if acts:
        require_prod_allowed(request.stage, request.allow_prod, "maintenance (vacuum, reindex, terminating sessions)")
    result = dict(planned, changed=acts, terminated=[], skipped=[], dropped_indexes=[])
    if check_mode or not acts:
        return result
    conn.autocommit = True
    for session in planned["terminate"]:  # a session that ended meanwhile is simply gone
        if conn.execute(sql.SQL("SELECT pg_terminate_backend(%s)"), [session["pid"]]).fetchone()[0]:
            result["terminated"].append(session["pid"])
    tables = planned["report"]
    for action in ("vacuum", "reindex"):
        result[action] = [label for label in planned[action] if _done(conn, tables[label], action, request, result)]
    conn.autocommit = False
    with conn.transaction():
        record(conn, "maintenance", request.stage, request.actor,
               {"vacuum": result["vacuum"], "reindex": result["reindex"], "terminated": result["terminated"],
                "skipped": result["skipped"], "dropped_indexes": result["dropped_indexes"]})
    result["report"] = table_report(conn)
    conn.rollback()
    result["changed"] = bool(result["vacuum"] or result["reindex"] or result["terminated"] or result["dropped_indexes"])
    return result


STATEMENTS = {"vacuum": "VACUUM (ANALYZE) {}", "reindex": "REINDEX TABLE CONCURRENTLY {}"}
# What a REINDEX CONCURRENTLY stopped half-way leaves, invalid: the new copy of an index, or (after the swap) the old
LEFT_BY_REINDEX = re.compile(r"_cc(new|old)\d*$")


def _done(conn, table: dict[str, Any], action: str, request: MaintenanceRequest, result: dict[str, Any]) -> bool:
    """Run ``action`` on ``table``. When a lock is not had within ``lock_timeout``, the table is left for the next
    run (in ``result``'s skipped and warnings, with who holds it). A REINDEX first drops the copies an earlier one
    stopped half-way left, which it would rebuild too; what one stopped now leaves is dropped at once if it can be,
    else by the next run."""
    undropped = _drop_reindex_leftovers(conn, table, result) if action == "reindex" else []
    if not undropped:
        try:
            conn.execute(sql.SQL(STATEMENTS[action]).format(_relation(table)))
            return True
        except psycopg.errors.LockNotAvailable:
            undropped = _drop_reindex_leftovers(conn, table, result) if action == "reindex" else []
    holders = table_holders(conn, table["schema"], table["table"])
    label = table_label(table["schema"], table["table"])
    result["skipped"].append({"table": label, "action": action, "held_by": holders})
    result.setdefault("warnings", []).append(
        "%s of %s was left for the next run: it waited lock_timeout=%d s for the table%s%s" % (
            action.upper(), label, request.lock_timeout,
            ", held now by " + holders if holders else " (no one holds it any more)",
            "; the invalid index%s %s, left by a REINDEX stopped half-way, could not be dropped (the next run "
            "drops %s first, or DROP INDEX CONCURRENTLY by hand)" % (
                "es" if len(undropped) > 1 else "", ", ".join(undropped), "them" if len(undropped) > 1 else "it")
            if undropped else ""))
    return False


def _drop_reindex_leftovers(conn, table: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """Drop, without blocking the table, the invalid indexes of ``table`` a REINDEX CONCURRENTLY stopped half-way
    left (named in ``result``'s dropped_indexes); the quoted names of those whose lock was not had are returned."""
    undropped = []
    for name, quoted in conn.execute(sql.SQL(
            "SELECT i.relname, format('%%I.%%I', n.nspname, i.relname) FROM pg_index x JOIN pg_class i "
            "ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace WHERE NOT x.indisvalid "
            "AND x.indrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s) ORDER BY 1"), [table["schema"], table["table"]]).fetchall():
        if not LEFT_BY_REINDEX.search(name):
            continue  # a failed CREATE INDEX CONCURRENTLY of someone else's: theirs to drop
        if undropped:  # each waits for the same holders of the table: one wait is enough
            undropped.append(quoted)
            continue
        try:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(table["schema"], name)))
            result["dropped_indexes"].append(quoted)
        except psycopg.errors.LockNotAvailable:
            undropped.append(quoted)
    return undropped


def _relation(table: dict[str, Any]):
    return sql.Identifier(table["schema"], table["table"])


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None
