# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Taking a backup with pg_dump: one snapshot for the dump and the row counts in its manifest."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._backups import (
    encryption,
    large_objects,
    privileges,
    row_security,
    store,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.compression import Compression, capable_pg_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.connection_room import fit_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._backups.lock_room import dump_explained, jobs_that_fit
from ansible_collections.phoenix.platform.plugins.module_utils._backups.plain_dump import read_plain_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.replication import LEAVE_OUT_SUBSCRIPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._backups.row_counts import (
    counted_relations,
    table_counts,
    unlocked_by_dump,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.bookkeeping import applied_versions
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import CHUNK, secure_tree, write_all
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import session_lock
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool,
    find_tool_and_major,
    libpq_environment,
    server_major,
    speaks_english,
    tool_said,
    tool_versions,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.pooler import require_dump_on_one_server
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import (
    acting_role,
    exclusive_holders,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.standby import (
    CONFLICT_WITH_RECOVERY,
    REPLAY_CANCELS,
    on_standby,
    replay_cancellations,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import read_only_snapshot

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

FORMAT_FLAGS = {"custom": "c", "directory": "d", "plain": "p"}
MAX_DEFAULT_JOBS = 4
DUMP_FILES = {"custom": "database.dump", "directory": "database", "plain": "database.sql"}
# what a backup leaves out: the database's subscriptions, which no restore creates (see replication), and whose
# connection strings may hold the publisher's password
LEFT_OUT = (LEAVE_OUT_SUBSCRIPTIONS,)


@dataclass
class BackupRequest:
    dest: Path
    stage: str
    kind: str = "manual"
    fmt: str = "custom"
    jobs: int | None = None  # None: default_jobs, where the server's lock table holds a parallel pg_dump's locks
    compress: Compression | None = None
    retention_days: int = 30
    keep_min: int = 3
    verify: bool = False
    fresh_within_hours: float | None = None
    actor: str = ""
    signing_key: str | None = None
    lock_timeout: int = 60
    encrypt_to: list[str] | None = None  # age recipients


def parallel_jobs() -> int:
    """Jobs of a parallel pg_dump or pg_restore when none are asked for: one per CPU, at most 4 (each job is a
    connection and a process)."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_JOBS)


def default_jobs(fmt: str) -> int:
    """pg_dump runs parallel jobs for the directory format only."""
    return parallel_jobs() if fmt == "directory" else 1


def _chosen_jobs(conn, fmt: str) -> tuple[int, str | None]:
    """The jobs of a backup's pg_dump left to choose them, and why fewer than the default: as many as the server's
    lock table (``jobs_that_fit``) and the connection limits (``fit_jobs``) allow."""
    jobs, fewer = jobs_that_fit(conn, default_jobs(fmt))
    if jobs == 1:
        return jobs, fewer
    fitted = fit_jobs(conn, jobs, "the backup's pg_dump", "backups", this_database=True)
    return fitted.jobs, fitted.fewer


def ensure_backup(conn, conninfo: str, request: BackupRequest, check_mode: bool) -> dict[str, Any]:
    if request.kind not in store.KINDS:
        raise PhoenixError("kind must be one of %s" % ", ".join(store.KINDS))
    if request.jobs is not None and request.jobs > 1 and request.fmt != "directory":
        raise PhoenixError("jobs > 1 needs format=directory (pg_dump runs parallel jobs only for that format)")
    if request.compress is not None and request.fmt == "plain" and request.compress.method != "none":
        # psql reads the script back as it is, and verification reads its meta-commands
        raise PhoenixError("format=plain is kept as readable SQL, uncompressed: compress %s needs format custom or "
                           "directory (or leave compress out)" % request.compress.label())
    if request.encrypt_to:
        encryption.recipients(request.encrypt_to)  # a typo fails before anything is written, check mode included
    tool = _pg_dump_for(conn, request.compress)  # an unusable compression fails check mode too
    jobs, fewer = (request.jobs, None) if request.jobs is not None else _chosen_jobs(conn, request.fmt)
    request = replace(request, jobs=jobs)
    conn.rollback()
    if check_mode:
        result = _plan(conn, request)
    else:
        with store.stage_lock(request.dest, request.stage, request.lock_timeout), \
                session_lock(conn, "backup:" + request.stage, request.lock_timeout):
            result = _take(conn, conninfo, request, tool)
    if result["changed"]:  # not a fresh backup found instead
        result["jobs"] = jobs
        if fewer:
            result.setdefault("warnings", []).append(fewer)
    return result


def _plan(conn, request: BackupRequest) -> dict[str, Any]:
    now = store.utcnow()
    existing = store.list_backups(request.dest, request.stage)
    fresh = _fresh(existing, request, now)
    if fresh:
        return fresh
    _require_everything_readable(conn)
    final = store.stage_dir(request.dest, request.stage) / store.new_id(request.stage, now)
    planned = store.to_prune(existing + [_placeholder(final, request, now)], request.kind,
                             request.retention_days, request.keep_min, now)
    return {"changed": True, "backup": {"id": final.name, "path": str(final), "kind": request.kind},
            "pruned": [b.id for b in planned], "fresh": False}


def _require_everything_readable(conn) -> None:
    """What pg_dump must read and a role may not is named before a backup writes anything."""
    user, superuser = acting_role(conn)
    if superuser:  # reads every table, row and large object
        return
    privileges.require_readable_relations(conn, user)
    row_security.require_every_row_readable(
        conn, "a backup must hold every row (pg_dump refuses to read a table a policy would filter)", "back up")
    large_objects.require_readable(conn, user)


def _fresh(existing: list[store.Backup], request: BackupRequest, now) -> dict[str, Any] | None:
    same_kind = [b for b in existing if b.manifest["kind"] == request.kind]
    if request.fresh_within_hours is not None and same_kind \
            and same_kind[-1].age_hours(now) < request.fresh_within_hours:
        return {"changed": False, "backup": same_kind[-1].summary(now), "pruned": [], "fresh": True}
    return None


def _take(conn, conninfo: str, request: BackupRequest, tool: tuple[Path, int]) -> dict[str, Any]:
    now = store.utcnow()
    fresh = _fresh(store.list_backups(request.dest, request.stage), request, now)
    if fresh:
        return fresh
    _require_everything_readable(conn)
    final = store.stage_dir(request.dest, request.stage) / store.new_id(request.stage, now)
    standby = on_standby(conn)
    cancelled_before = replay_cancellations(conn) if standby else 0
    try:
        made = _dump(conn, conninfo, request, tool, final, now, standby)
    except (psycopg.Error, PhoenixError) as exc:
        # the server says so, unless the connection went before its message came: then its count of them does
        if standby and (CONFLICT_WITH_RECOVERY in str(exc) or _cancelled_by_replay(conninfo, cancelled_before)):
            raise PhoenixError("the standby's replay cancelled the backup (a conflict with recovery), and no backup "
                               "was made: %s" % REPLAY_CANCELS) from None
        raise
    pruned = store.to_prune(store.list_backups(request.dest, request.stage), request.kind, request.retention_days,
                            request.keep_min, now)
    for backup in pruned:
        shutil.rmtree(backup.path)
    result = {"changed": True, "backup": made.summary(now), "pruned": [b.id for b in pruned], "fresh": False,
              "warnings": []}
    if standby:  # the audit log is the primary's: a standby takes no writes
        replayed = made.manifest["standby"]["last_replayed_commit"]
        result["warnings"].append(
            "%s was taken on a standby: its rows are as of the last change the standby replayed (%s), and the audit "
            "log, which only the primary can write, does not record it"
            % (made.id, "committed at %s" % replayed if replayed else "none since the standby started"))
        return result
    try:
        with conn.transaction():
            if applied_versions(conn):  # a database without the phoenix schema has no audit log
                record(conn, "backup.create", request.stage, request.actor,
                       {"backup": made.id, "kind": request.kind, "pruned": [b.id for b in pruned]})
    except psycopg.errors.InsufficientPrivilege:  # a backup role that reads everything and writes nothing
        result["warnings"].append(
            "%s was made, but role %s may not write the audit log, which does not record it: to record backups, "
            "GRANT INSERT ON phoenix.audit_log TO %s and GRANT USAGE ON SEQUENCE phoenix.audit_log_id_seq TO %s"
            % (made.id, conn.info.user, conn.info.user, conn.info.user))
    except psycopg.errors.ReadOnlySqlTransaction:  # such a role, made so by ALTER ROLE ... SET
        result["warnings"].append(
            "%s was made, but every transaction of role %s is read-only (default_transaction_read_only is on for "
            "the role or the database), and the audit log does not record it: to record backups, run them as a role "
            "that may write phoenix.audit_log" % (made.id, conn.info.user))
    return result


def _cancelled_by_replay(conninfo: str, before: int) -> bool:
    """Whether the standby's replay cancelled one of this database's queries since it had cancelled ``before``: a
    cancelled session may count it only as it exits, just after its client saw it fail."""
    with open_session(conninfo, autocommit=True) as conn:
        for attempt in range(10):
            if replay_cancellations(conn) > before:
                return True
            time.sleep(0.1)
    return False


def _replayed(conn) -> dict[str, Any]:
    """A standby's manifest fact: when the last change it replayed was committed on the primary (its rows are as of
    then; None before it replays one)."""
    replayed = conn.execute(sql.SQL("SELECT pg_last_xact_replay_timestamp()")).fetchone()[0]
    return {"last_replayed_commit": replayed.isoformat() if replayed else None}


def _pg_dump_for(conn, compression: Compression | None) -> tuple[Path, int]:
    """The server's own pg_dump (or the nearest newer one); for zstd and lz4, the newest that writes them. A dump
    made by the server's own version restores with the programs that usually come with the server."""
    ssl = conn.pgconn.ssl_in_use  # and so must pg_dump's (see conninfo_reached)
    if compression is None or not compression.needs_major:
        return find_tool_and_major("pg_dump", server_major(conn), ssl)
    return capable_pg_dump(compression, tool_versions("pg_dump", ssl), server_major(conn))


def _placeholder(path: Path, request: BackupRequest, now) -> store.Backup:
    return store.Backup(path, {"kind": request.kind, "created_at": now.isoformat()})


def _dump(conn, conninfo: str, request: BackupRequest, tool: tuple[Path, int], final: Path, now,
          standby: bool) -> store.Backup:
    started = time.monotonic()
    root = store.stage_dir(request.dest, request.stage)
    store.remove_partials(request.dest, request.stage)  # left by killed runs: this run holds the stage lock
    work = root / (".%s%s" % (final.name, store.PARTIAL_SUFFIX))
    work.mkdir(mode=0o700)
    try:
        pg_dump, dump_major = tool
        conn.rollback()
        read_only_snapshot(conn)
        conn.execute(sql.SQL("SELECT set_config('lock_timeout', %s, true)"), [lock_wait(request.lock_timeout)])
        snapshot = conn.execute(sql.SQL("SELECT pg_export_snapshot()")).fetchone()[0]
        facts = {
            "server_version": conn.execute(sql.SQL("SHOW server_version")).fetchone()[0],
            "schema_version": max(applied_versions(conn) or {0}),
            "database_size": conn.execute(sql.SQL("SELECT pg_database_size(current_database())")).fetchone()[0],
            "large_objects": large_objects.count(conn),
            "standby": _replayed(conn) if standby else None,
        }
        target = work / DUMP_FILES[request.fmt]
        command = [str(pg_dump), "--format", FORMAT_FLAGS[request.fmt], "--snapshot", snapshot, "--no-password",
                   "--lock-wait-timeout", lock_wait(request.lock_timeout), *LEFT_OUT]
        if request.fmt == "directory":
            command += ["--jobs", str(request.jobs), "--file", str(target)]
        if request.compress is not None:
            command += request.compress.pg_dump_flags(dump_major)
        if request.fmt == "plain":
            command += ["--clean", "--if-exists"]
        sealed_to = encryption.recipients(request.encrypt_to) if request.encrypt_to else None
        streamed = sealed_to is not None and request.fmt != "directory"  # sealed on its way to the disk
        check = None
        if streamed and request.verify:
            check = _StreamedCheck(store.Backup(work, dict(facts, format=request.fmt, pg_dump_major=dump_major)),
                                   pg_dump.parent / "pg_restore")
        # its sessions by name, to count each table once pg_dump holds its lock
        env = dict(libpq_environment(conninfo), PGAPPNAME="phoenix backup %s" % snapshot)
        try:
            files, counts = _run_dump(conn, command, env, target, request.fmt, sealed_to if streamed else None,
                                      check.feed if check else None)
        except (psycopg.errors.LockNotAvailable, _LockWaitEnded):  # the counts' lock, or pg_dump's
            conn.rollback()
            raise PhoenixError("the backup waited lock_timeout=%d s for a table that %s; run it again once that "
                               "ends, or raise lock_timeout" % (request.lock_timeout, _held(conn))) from None
        except PhoenixError as exc:
            raise PhoenixError(dump_explained(exc.msg, request.jobs), **exc.details) from None
        except psycopg.errors.OutOfMemory as exc:  # the counts', once pg_dump's locks have filled the lock table
            conn.rollback()
            raise PhoenixError(dump_explained("the row counts failed while pg_dump ran: %s" % " ".join(
                str(exc).split()), request.jobs)) from None
        finally:
            streamed_problems = check.finish() if check else []
        conn.rollback()  # the snapshot is no longer needed once pg_dump has finished
        if request.fmt == "directory":
            files = store.file_entries(work)
        manifest = {
            "id": final.name, "stage": request.stage, "kind": request.kind, "format": request.fmt,
            "created_at": now.isoformat(), "duration_seconds": round(time.monotonic() - started, 3),
            "pg_dump": str(pg_dump), "pg_dump_major": dump_major,
            "compression": request.compress.label() if request.compress else "default", "row_counts": counts,
            "files": files, "created_by": request.actor, "verified": None, "encryption": None, **facts,
        }
        secure_tree(work)
        backup = store.Backup(work, manifest)
        if request.verify:
            # checksums first; then the dump: as it went by when it was encrypted on its way, else the files
            problems = store.verify_checksums(backup) or (streamed_problems if check else dump_problems(
                backup, encryption.DumpFiles(backup), pg_dump.parent / "pg_restore"))
            if problems:
                raise PhoenixError("the new backup failed verification: %s" % "; ".join(problems))
            manifest["verified"] = store.utcnow().isoformat()
        if sealed_to and not streamed:  # after the check, which reads the plain files; the manifest hashes what is stored
            encryption.encrypt_tree(work, sealed_to)
            manifest["files"] = store.file_entries(work)
        if sealed_to:
            manifest["encryption"] = {"method": "age", "recipients": [r.strip() for r in request.encrypt_to]}
        store.sign(manifest, request.signing_key)
        store.write_manifest(work, manifest)  # last: only now is it a backup
        store.fsync_tree(work)
        store.publish(work, final)
        return store.Backup(final, manifest)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _run_dump(conn, command: list[str], env: dict[str, str], target: Path, fmt: str, sealed_to: list[Any] | None = None,
              tap: Callable[[bytes], None] | None = None):
    """Run pg_dump; for single-file formats stream its output to disk (encrypted on its way for ``sealed_to``,
    every plain chunk handed to ``tap``), hashing what is stored as it goes, while the row counts run on the
    snapshot's own connection."""
    server_english = speaks_english(conn)
    if fmt == "directory":
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr: list[bytes] = []
        counts = _counted_while_dumping(conn, process, env["PGAPPNAME"],
                                        lambda: stderr.append(process.communicate()[1]))
        _check(process.returncode, stderr[0], server_english)
        return [], counts
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = target.with_name(target.name + encryption.SUFFIX) if sealed_to else target
    sink, source = _HashingWriter(), _TappedReader(process.stdout, tap)
    errors: list[bytes] = []

    def copy_out() -> None:
        try:
            with open(stored, "wb") as sink.out:
                if sealed_to:
                    encryption.encrypt_stream(source, sink, sealed_to)
                else:
                    for chunk in iter(lambda: source.read(CHUNK), b""):
                        sink.write(chunk)
        except Exception as exc:  # a reader that stops must stop pg_dump too, or it blocks on a full pipe forever
            errors.append(("writing %s: %s\n" % (stored, exc)).encode())
            process.kill()

    def drain_errors() -> None:
        errors.append(process.stderr.read())

    threads = [threading.Thread(target=copy_out), threading.Thread(target=drain_errors)]
    for thread in threads:
        thread.start()

    def finish() -> None:
        for thread in threads:
            thread.join()
        process.wait()
    counts = _counted_while_dumping(conn, process, env["PGAPPNAME"], finish)
    _check(process.returncode, b"".join(errors), server_english)
    return [{"name": stored.name, "size": sink.size, "sha256": sink.digest.hexdigest()}], counts


def _counted_while_dumping(conn, process: subprocess.Popen, application: str,
                           finish: Callable[[], None]) -> dict[str, int]:
    """The row counts, on the snapshot's connection while pg_dump (its sessions named ``application``) runs, each
    table's once pg_dump holds its lock. When they fail (a table's lock waited for too long, say) pg_dump is
    stopped; ``finish`` waits for pg_dump and what reads its output, either way."""
    try:
        tables = counted_relations(conn)
        unlocked = unlocked_by_dump(conn, application, process, tables)
        if process.poll():
            return {}  # pg_dump failed (waiting for a table's lock, say): its error is the message
        return table_counts(conn, keep_locks=unlocked, tables=tables)
    except BaseException:
        process.kill()
        raise
    finally:
        finish()


class _HashingWriter:
    """Writes to ``out``, hashing and counting what it writes: what the manifest records of the stored file."""

    def __init__(self) -> None:
        self.digest, self.size, self.out = hashlib.sha256(), 0, None

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        pass


class _TappedReader:
    """pg_dump's output, every chunk also handed to ``tap`` as it is read."""

    def __init__(self, source: BinaryIO, tap: Callable[[bytes], None] | None) -> None:
        self.source, self.tap = source, tap

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        if chunk and self.tap is not None:
            self.tap(chunk)
        return chunk


class _StreamedCheck:
    """``dump_problems`` of a dump encrypted as pg_dump writes it, run on its plain bytes on their way: they are
    fed to it through a pipe, read by ``pg_restore --list`` or the plain dump's check. A check that has read all it
    needs (``pg_restore --list`` stops after the table of contents) is fed no more."""

    def __init__(self, backup: store.Backup, pg_restore: Path) -> None:
        read_fd, self._write_fd = os.pipe()
        self._stream = open(read_fd, "rb")
        self._problems: list[str] = []
        self.listings: dict[tuple[str, str], Any] = {}  # as DumpFiles has them
        self._thread = threading.Thread(target=self._run, args=(backup, pg_restore), daemon=True)
        self._thread.start()

    def _run(self, backup: store.Backup, pg_restore: Path) -> None:
        try:
            self._problems = dump_problems(backup, self, pg_restore)
        except Exception as exc:  # reported as the check's finding, with the others
            self._problems = ["the dump could not be checked: %s" % exc]
        finally:
            self._stream.close()  # a feed still writing stops with a broken pipe

    @contextlib.contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO]:
        yield self._stream

    @contextlib.contextmanager
    def program_input(self, name: str, seekable: bool = False) -> Iterator[tuple[list[str], BinaryIO]]:
        yield [], self._stream

    def feed(self, chunk: bytes) -> None:
        if self._write_fd is None:
            return
        try:
            write_all(self._write_fd, chunk)
        except BrokenPipeError:
            self._end()

    def finish(self) -> list[str]:
        """What the check found, once it has had every byte (or all it wanted)."""
        self._end()
        self._thread.join()
        return self._problems

    def _end(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None


def lock_wait(seconds: int) -> str:
    """``lock_timeout`` as the server and pg_dump's ``--lock-wait-timeout`` take it (0: no end)."""
    return "%ds" % seconds


def _held(conn) -> str:
    holders = exclusive_holders(conn)
    return "someone holds so that no one may read it (%s)" % holders if holders else "was held (no longer now)"


class _LockWaitEnded(Exception):
    """pg_dump gave up waiting for a table's lock (its --lock-wait-timeout)."""


# what pg_dump says when its LOCK TABLE ran out of time: the server's words, where it speaks English
LOCK_WAIT_ENDED = (b"canceling statement due to statement timeout", b"canceling statement due to lock timeout")
# Where the server speaks another language: pg_dump's own words (English, see ``libpq_environment``) quote the
# statement that failed, a LOCK TABLE, and the server's give no hint of a full lock table, which names this setting.
LOCK_FAILED = b"Query was: LOCK TABLE "
LOCK_TABLE_FULL_HINT = b"max_locks_per_transaction"


def _check(returncode: int, stderr: bytes, server_english: bool) -> None:
    if returncode == 0:
        return
    if any(message in stderr for message in LOCK_WAIT_ENDED) or (
            not server_english and LOCK_FAILED in stderr and LOCK_TABLE_FULL_HINT not in stderr):
        raise _LockWaitEnded()
    require_dump_on_one_server(stderr)
    raise PhoenixError("pg_dump failed (exit %d): %s" % (returncode, tool_said(stderr.decode(errors="replace"))))


def dump_problems(backup: store.Backup, files: encryption.DumpFiles, pg_restore: Path | None = None) -> list[str]:
    """``pg_restore --list`` (custom and directory formats) or the meta-command check (plain) of the dump
    ``files``, decrypted as they are read when the backup is encrypted."""
    name = DUMP_FILES[backup.manifest["format"]]
    if backup.manifest["format"] == "plain":
        problem = read_plain(files, name)[0]
        return [problem] if problem else []
    if pg_restore is None or not pg_restore.exists():
        pg_restore = find_tool("pg_restore", backup.reader_major(
            int(str(backup.manifest["server_version"]).split(".", maxsplit=1)[0])))
    listing = list_dump(pg_restore, files, name)
    if listing.returncode != 0:
        return ["pg_restore --list failed: %s" % listing.stderr.strip()[-400:]]
    return []


@contextlib.contextmanager
def use_list(entries: Iterable[str]) -> Iterator[str]:
    """A file holding ``entries`` (lines of ``pg_restore --list``), for ``pg_restore --use-list``, while in use."""
    with tempfile.NamedTemporaryFile("w", prefix="phoenix-", suffix=".list") as selection:
        selection.writelines(entries)
        selection.flush()
        yield selection.name


def read_plain(files: encryption.DumpFiles, name: str) -> tuple[str | None, list[str]]:
    """``read_plain_dump`` of the plain dump ``name`` in ``files``, read once: the verification and the restore
    of the same files both need it."""
    key = ("plain", name)
    if key not in files.listings:
        with files.stream(name) as script:
            files.listings[key] = read_plain_dump(script, name)
    return files.listings[key]


def list_dump(pg_restore: Path, files: encryption.DumpFiles, name: str) -> subprocess.CompletedProcess:
    """``pg_restore --list`` of the dump ``name`` in ``files`` (its table of contents, as text); run once per
    program, as the verification and the restore of the same files both need it."""
    ran = (str(pg_restore), name)
    if ran not in files.listings:
        with files.program_input(name) as (dump, stdin):
            files.listings[ran] = subprocess.run([str(pg_restore), "--list", *dump], stdin=stdin, capture_output=True,
                                                 text=True, check=False)
    return files.listings[ran]
