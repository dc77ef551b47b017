# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health of one environment, in the shape of the original Phoenix health API.

``{status, timestamp, environment, checks: {database: {status, responseTime}, ...}, metrics}``.
An unreachable database is a result (unhealthy, with the reason), not an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from ansible_collections.phoenix.platform.plugins.module_utils._core.bookkeeping import applied_versions, registered_app_schema
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import registered_stage
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import expired_condition
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import (
    WORLD_META_TABLE,
    relation_exists,
    table_label,
    user_tables,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import exclusive_holders
from ansible_collections.phoenix.platform.plugins.module_utils._pg.standby import on_standby

try:
    import psycopg
    from psycopg import sql
    from psycopg.rows import namedtuple_row
    from psycopg.types.json import Jsonb
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = "healthy", "degraded", "unhealthy", "unknown"
SEVERITY = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}
FAIL_ON = ("unhealthy", "degraded", "never")
SLOW_RESPONSE_MS = 500.0
CONNECTIONS_DEGRADED_RATIO = 0.9
IDLE_IN_TRANSACTION_MINUTES = 10
EXACT_COUNT_MAX_ROWS = 1_000_000  # above this, table metrics use the planner's estimate


@dataclass
class HealthRequest:
    stage: str
    detail: bool
    backup_dir: str | None
    backup_max_age_hours: float
    max_worlds: int
    record: bool
    check_mode: bool
    backup_times: list[datetime]  # of the backups found under backup_dir/<STAGE>, oldest first
    latest_version: int  # of the migrations this collection ships
    pending_migrations: Callable[[set[int], str], list]  # (applied versions, app schema) -> migrations to apply
    history_retention_days: int | None = None  # recorded history older than this is deleted when recording
    lock_timeout: int = 10  # seconds a check waits at most for a table someone holds


def overall_status(checks: dict[str, dict[str, Any]]) -> str:
    """The worst status among the checks; ``unknown`` checks do not count."""
    statuses = [c["status"] for c in checks.values() if c["status"] in SEVERITY]
    return max(statuses, key=SEVERITY.__getitem__, default=HEALTHY)


def should_fail(status: str, fail_on: str) -> bool:
    return fail_on != "never" and SEVERITY[status] >= SEVERITY[fail_on]


def problems(checks: dict[str, dict[str, Any]]) -> list[str]:
    return ["%s: %s" % (name, c.get("message", c["status"])) for name, c in checks.items()
            if c["status"] in (DEGRADED, UNHEALTHY)]


def check_backups(backup_dir: str | None, backup_times: list[datetime], stage: str, max_age_hours: float,
                  now: float) -> dict[str, Any]:
    """Age of the newest backup under backup_dir/<STAGE>/ (found by the caller as every backup module finds them)."""
    if not backup_dir:
        return {"status": UNKNOWN, "message": "backup_dir not set"}
    if not backup_times:
        return {"status": UNKNOWN, "message": "no backup under %s/%s" % (backup_dir.rstrip("/"), stage)}
    age_hours = round((now - backup_times[-1].timestamp()) / 3600, 2)
    check = {"status": HEALTHY, "latestAgeHours": age_hours, "maxAgeHours": max_age_hours}
    if age_hours > max_age_hours:
        check.update(status=DEGRADED, message="newest backup is %.1f h old (max %.1f h)" % (age_hours, max_age_hours))
    return check


def collect(connect: Callable[[], Any], request: HealthRequest) -> tuple[dict[str, Any], bool]:
    """Build the health report; returns it and whether health history was written. ``connect()`` opens a session
    whose lock waits end after ``request.lock_timeout`` (``PhoenixModule.connect``)."""
    now = time.time()
    report: dict[str, Any] = {
        "status": HEALTHY,
        "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
        "environment": request.stage,
        "checks": {},
    }
    checks = report["checks"]
    checks["backups"] = check_backups(request.backup_dir, request.backup_times, request.stage,
                                      request.backup_max_age_hours, now)
    recorded = False
    started = time.perf_counter()
    try:
        conn = connect()
    except PhoenixError as exc:
        checks["database"] = {"status": UNHEALTHY, "message": exc.details.get("reason", exc.msg)}
        conn = None
    if conn is not None:
        with conn:
            conn.autocommit = True
            connect_ms = (time.perf_counter() - started) * 1000
            checks["database"] = _check_database(conn, connect_ms)
            for name, check in (("schema", lambda: _check_schema(conn, request)),
                                ("stage", lambda: _check_stage(conn, request.stage)),
                                ("worlds", lambda: _check_worlds(conn, request.max_worlds)),
                                ("connections", lambda: _check_connections(conn)),
                                ("replication", lambda: _check_replication(conn, checks["database"]["standby"]))):
                checks[name] = _unless_held(conn, check, request.lock_timeout)
            report["status"] = overall_status(checks)
            report["warnings"] = _delayed(checks["replication"])
            if request.detail:
                report["metrics"] = _metrics(conn, checks)
            if request.record and not request.check_mode and checks["stage"]["status"] == HEALTHY:
                if checks["database"]["standby"]:  # what a standby sees is worth reporting; only its primary keeps it
                    report["warnings"].append("the server is a standby, which takes no writes: this result was not "
                                              "recorded in phoenix.health_history; record the primary's health")
                else:
                    _record(conn, report)
                    recorded = True
                    if request.history_retention_days is not None:
                        report["history_pruned"] = _prune(conn, request.history_retention_days)
    else:
        report["status"] = UNHEALTHY
    return report, recorded


def _delayed(replication: dict[str, Any]) -> list[str]:
    """What a standby set to apply its primary's changes late (as one kept to undo mistakes is) means for a reader:
    by design, so no fault, but its rows, and backups taken from it, are that far behind."""
    delay = replication.get("applyDelaySeconds")
    if not delay:
        return []
    return ["this standby applies its primary's changes %s late (recovery_min_apply_delay): its rows, and backups "
            "taken from it, are at least that far behind the primary's" % _duration_in_words(delay)]


def _duration_in_words(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return "%d %s" % (seconds // size, unit)
    return "%g s" % seconds


def _scalar(conn, query, params=()) -> Any:
    return conn.execute(sql.SQL(query) if isinstance(query, str) else query, params).fetchone()[0]


def _unless_held(conn, check: Callable[[], dict[str, Any]], lock_timeout: int) -> dict[str, Any]:
    """``check``'s result; unhealthy, naming the table and who holds it, when a table it reads is held so that no
    one may read it (a migration's ALTER TABLE, a VACUUM FULL) for longer than ``lock_timeout``: the application
    cannot read it either."""
    try:
        return check()
    except psycopg.errors.LockNotAvailable:
        holders = exclusive_holders(conn)
        return {"status": UNHEALTHY, "message": "a table it reads was held for longer than lock_timeout=%d s so that "
                "no one may read it: %s" % (lock_timeout, holders or "no one holds it any more")}


def _check_database(conn, connect_ms: float) -> dict[str, Any]:
    started = time.perf_counter()
    _scalar(conn, "SELECT 1")
    response_ms = round((time.perf_counter() - started) * 1000, 3)
    check = {
        "status": HEALTHY,
        "responseTime": response_ms,
        "connectTime": round(connect_ms, 3),
        "serverVersion": _scalar(conn, "SHOW server_version"),
        "standby": on_standby(conn),
    }
    if response_ms > SLOW_RESPONSE_MS:
        check.update(status=DEGRADED, message="round trip took %.0f ms" % response_ms)
    return check


def _check_schema(conn, request: HealthRequest) -> dict[str, Any]:
    applied = applied_versions(conn)
    if not applied:
        return {"status": UNHEALTHY, "version": 0,
                "message": "Phoenix schema not initialised: run phoenix.platform.phoenix_schema"}
    app_schema = registered_app_schema(conn) or "reference"
    todo = request.pending_migrations(applied, app_schema)
    check = {"status": HEALTHY, "version": max(applied), "latest": request.latest_version,
             "pending": len(todo)}
    if todo:
        check.update(status=DEGRADED, message="%d migration(s) pending" % len(todo))
    return check


def _check_stage(conn, declared: str) -> dict[str, Any]:
    registered = registered_stage(conn)
    check = {"status": HEALTHY, "declared": declared, "registered": registered}
    if registered is None:
        check.update(status=DEGRADED, message="stage not registered yet (run phoenix_schema)")
    elif registered != declared:
        check.update(status=UNHEALTHY,
                     message="database is registered as %s, not %s" % (registered, declared))
    return check


def _check_worlds(conn, max_worlds: int) -> dict[str, Any]:
    if not relation_exists(conn, WORLD_META_TABLE):
        return {"status": UNKNOWN, "message": "no WorldMeta table"}

    total, active, templates, expired = conn.execute(sql.SQL(
        'SELECT count(*), count(*) FILTER (WHERE "isActive"), count(*) FILTER (WHERE "isTemplate"), '
        'count(*) FILTER (WHERE {expired}) FROM "WorldMeta"').format(expired=expired_condition(sql.NULL))).fetchone()
    check = {"status": HEALTHY, "total": total, "active": active, "templates": templates,
             "expired": expired, "max": max_worlds}
    if total > max_worlds:
        check.update(status=DEGRADED, message="%d worlds, more than the %d allowed" % (total, max_worlds))
    return check


def _check_connections(conn) -> dict[str, Any]:
    used, max_connections, stuck = conn.execute(sql.SQL(
        "SELECT count(*), current_setting('max_connections')::int, "
        "count(*) FILTER (WHERE state = 'idle in transaction' "
        "AND state_change < now() - make_interval(mins => %s)) "
        "FROM pg_stat_activity WHERE backend_type = 'client backend'"
    ), [IDLE_IN_TRANSACTION_MINUTES]).fetchone()
    check = {"status": HEALTHY, "active": used, "max": max_connections, "idleInTransaction": stuck}
    messages = []
    if used >= CONNECTIONS_DEGRADED_RATIO * max_connections:
        messages.append("%d of %d connections in use" % (used, max_connections))
    if stuck:
        messages.append("%d session(s) idle in transaction for over %d minutes"
                        % (stuck, IDLE_IN_TRANSACTION_MINUTES))
    if messages:
        check.update(status=DEGRADED, message="; ".join(messages))
    return check


def _check_replication(conn, standby: bool) -> dict[str, Any]:
    """The logical replication slots of this database (a change data capture pipeline's, say; restores keep them)
    and the server's physical ones (a standby's): another database's logical slots are its own environment's.
    A slot keeps every WAL segment its consumer has not confirmed: one whose consumer is gone keeps them until the
    server's disk fills, under this database too. The server calls a slot ``extended`` once it holds more than
    ``max_wal_size``, and ``lost`` once ``max_slot_wal_keep_size`` had WAL removed that the slot still needed."""
    with conn.cursor(row_factory=namedtuple_row) as cursor:
        slots = cursor.execute(sql.SQL(
            "SELECT slot_name AS name, slot_type AS kind, active, to_jsonb(s) ->> 'wal_status' AS state, held, "
            "pg_size_pretty(held) AS size "
            "FROM pg_replication_slots s, LATERAL (SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() "
            "THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint AS held) w "
            "WHERE s.database = current_database() OR s.slot_type = 'physical' ORDER BY 1")).fetchall()
    check = {"status": HEALTHY, "slots": len(slots), "inactive": sum(not slot.active for slot in slots),
             "retainedBytes": max((slot.held or 0 for slot in slots), default=0)}
    lost = ["%s slot %s lost WAL its consumer had not read, so the consumer cannot go on" % (slot.kind, slot.name)
            for slot in slots if slot.state == "lost"]
    growing = ["%s slot %s (%s) holds %s of WAL, more than max_wal_size"
               % (slot.kind, slot.name, "in use" if slot.active else "not in use", slot.size)
               for slot in slots if slot.state in ("extended", "unreserved")]
    messages = []
    if lost:
        messages.append("; ".join(lost) + "; drop such a slot (pg_drop_replication_slot) and set its consumer up again")
    if growing:
        messages.append("; ".join(growing) + "; the server keeps WAL until a slot's consumer reads it: start the "
                        "consumer, or drop a slot nothing reads (pg_drop_replication_slot) before the disk fills")
    if standby:
        feed, behind = _standby_feed(conn)
        check.update(feed)
        messages.extend(behind)
    if messages:
        check.update(status=UNHEALTHY if lost else DEGRADED, message="; ".join(messages))
    return check


def _standby_feed(conn) -> tuple[dict[str, Any], list[str]]:
    """A standby's fields: whether it receives its primary's WAL and replays it, and how much it received but has
    not replayed yet; and why its rows (and the backups taken from it) fall behind the primary's, if they do. A
    standby fed from a WAL archive alone has no primary to receive from (no primary_conninfo). A role without
    pg_read_all_stats sees that a WAL receiver runs (its pid), not its status: it is taken to stream."""
    with conn.cursor(row_factory=namedtuple_row) as cursor:
        feed = cursor.execute(sql.SQL(
            "SELECT (SELECT coalesce(status, 'running') FROM pg_stat_wal_receiver) AS receiver, "
            "(SELECT setting <> '' FROM pg_settings WHERE name = 'primary_conninfo') AS from_primary, "
            "pg_is_wal_replay_paused() AS paused, pg_last_xact_replay_timestamp() AS replayed, "
            "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS backlog, "
            "(SELECT setting::bigint FROM pg_settings WHERE name = 'recovery_min_apply_delay') AS delay_ms")).fetchone()
    behind = []
    receiving = feed.receiver in ("streaming", "running")
    if not receiving and feed.from_primary is not False:  # None: a role that may not see it
        behind.append("this standby receives no WAL from its primary (its WAL receiver is %s), so its rows fall "
                      "behind the primary's: check primary_conninfo and that the primary is reachable"
                      % (feed.receiver or "not running"))
    if feed.paused:
        behind.append("replay is paused on this standby (pg_wal_replay_pause), so its rows stay as of %s: resume it "
                      "with pg_wal_replay_resume()" % (feed.replayed.isoformat(timespec="seconds") if feed.replayed
                                                       else "its last replayed change"))
    return {"receiving": receiving, "replayPaused": feed.paused, "replayBacklogBytes": max(feed.backlog or 0, 0),
            "applyDelaySeconds": feed.delay_ms / 1000}, behind


def _metrics(conn, checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "database": {
            "responseTime": checks["database"]["responseTime"],
            "sizeBytes": _scalar(conn, "SELECT pg_database_size(current_database())"),
        },
        "worlds": {"byEnvironment": {}, "byCategory": {}},
        "tables": {},
    }
    if relation_exists(conn, WORLD_META_TABLE):
        for column, key in (("environment", "byEnvironment"), ("category", "byCategory")):
            query = sql.SQL('SELECT coalesce({}::text, %s), count(*) FROM "WorldMeta" GROUP BY 1 ORDER BY 1').format(
                sql.Identifier(column))
            metrics["worlds"][key] = dict(conn.execute(query, ["(none)"]).fetchall())
    for oid, schema, table, estimate in user_tables(conn):
        entry: dict[str, Any] = {"sizeBytes": _scalar(conn, "SELECT pg_total_relation_size(%s)", [oid])}
        if estimate > EXACT_COUNT_MAX_ROWS:
            entry.update(rows=estimate, rowsEstimated=True)
        else:
            entry["rows"] = _scalar(conn, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
        metrics["tables"][table_label(schema, table)] = entry
    return metrics


def _prune(conn, days: int) -> int:
    return conn.execute(sql.SQL("DELETE FROM phoenix.health_history WHERE checked_at < now() - make_interval(days => %s)"),
                        [days]).rowcount


def _record(conn, report: dict[str, Any]) -> None:
    conn.execute(sql.SQL(
        "INSERT INTO phoenix.health_history (stage, status, response_ms, checks) VALUES (%s, %s, %s, %s)"
    ), [report["environment"], report["status"], report["checks"]["database"]["responseTime"],
        Jsonb(report["checks"])])
