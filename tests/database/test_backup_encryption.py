"""Backups encrypted at rest with age: round trips, and what happens without the identity."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pyrage
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import dump as dump_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, restore, store
from ansible_collections.phoenix.platform.plugins.module_utils._pg import binaries
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_world,
)
from ansible_collections.phoenix.platform.tests.helpers import module_process, run_module

from worlds_fixtures import app_fingerprints, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


def call(main, database, check=False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


@pytest.fixture
def keys():
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def stored_bytes(root) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json")


@pytest.mark.parametrize("fmt, mode, compress", [
    ("custom", "in_place", "gzip"), ("directory", "swap", "gzip"), ("plain", "in_place", "none"),
    ("directory", "in_place", "gzip"),
    ("directory", "in_place", "zstd"),  # pg_restore 17 for an older server: its script goes through psql
])
def test_an_encrypted_backup_round_trips_and_holds_no_readable_row(data, tmp_path, keys, fmt, mode, compress):
    secret, public = keys
    email = data.query('SELECT email FROM "User" ORDER BY email LIMIT 1')[0][0]
    before = app_fingerprints(data)
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, encrypt_to=[public], verify=True,
                compress=compress)
    assert made["changed"] is True, made.get("msg")
    path = tmp_path / "BETA" / made["backup"]["id"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["encryption"] == {"method": "age", "recipients": [public]} and manifest["verified"]
    assert manifest["files"] and all(f["name"].endswith(".age") for f in manifest["files"])
    assert email.encode() not in stored_bytes(path) and b"COPY public" not in stored_bytes(path)

    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    drilled = call(phoenix_restore_drill.main, data, dest=str(tmp_path), backup_identity=secret)
    assert drilled.get("passed") is True, drilled.get("msg")
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), backup=made["backup"]["id"], mode=mode,
                    backup_identity=secret, encrypt_to=[public])
    assert restored["changed"] is True, restored.get("msg")
    assert app_fingerprints(data) == before
    assert secret not in restored["_raw"] and secret not in drilled["_raw"]
    assert not list(tmp_path.rglob("*.decrypted"))  # the private plain copy is gone
    if restored["safety_backup"]:  # encrypted like the backups it stands beside
        safety = json.loads((tmp_path / "BETA" / restored["safety_backup"]["id"] / "manifest.json").read_text())
        assert safety["encryption"]["recipients"] == [public]
    if mode == "swap":
        with data.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(restored["kept_database"])))


def test_without_the_identity_an_encrypted_backup_cannot_be_restored_and_the_error_says_so(data, tmp_path, keys):
    secret, public = keys
    made = call(phoenix_backup.main, data, dest=str(tmp_path), encrypt_to=[public])
    before = table_fingerprints(data)
    missing = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False)
    assert missing["failed"] is True
    assert "backup %s is encrypted to %s; give backup_identity" % (made["backup"]["id"], public) in missing["msg"]
    other = str(pyrage.x25519.Identity.generate())
    wrong = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False, backup_identity=other)
    assert wrong["failed"] is True and "cannot be decrypted with the backup_identity given" in wrong["msg"]
    assert other not in wrong["_raw"]
    drill = call(phoenix_restore_drill.main, data, dest=str(tmp_path))
    assert drill["failed"] is True and "give backup_identity" in drill["msg"]
    assert table_fingerprints(data) == before
    assert not list(tmp_path.rglob("*.decrypted"))


@pytest.mark.parametrize("options, message", [
    ({"encrypt_to": ["age1notakey"]}, "encrypt_to: 'age1notakey' is not an age recipient"),
])
def test_a_typo_in_a_recipient_is_refused_before_anything_is_written(data, tmp_path, options, message):
    for check in (True, False):
        result = call(phoenix_backup.main, data, check=check, dest=str(tmp_path), **options)
        assert result["failed"] is True and message in result["msg"] and "Traceback" not in result["_raw"]
    assert not list(tmp_path.rglob("backup-*"))


def test_a_secret_key_given_as_a_recipient_is_refused_and_never_shown(data, tmp_path, keys, monkeypatch):
    secret, public = keys
    made, refused = tmp_path / "made", tmp_path / "refused"
    assert call(phoenix_backup.main, data, dest=str(made))["changed"] is True
    stored, before = stored_bytes(made), table_fingerprints(data)
    given = [public, " " + secret]
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"
    runs = [(phoenix_backup.main, {"dest": str(refused), "encrypt_to": given}),
            (phoenix_backup.main, {"dest": str(refused), "encrypt_to": [public, pem]}),
            (phoenix_restore.main, {"dest": str(made), "encrypt_to": given})]  # its safety backup's recipients
    for main, options in runs:
        for check in (True, False):
            result = call(main, data, check=check, **options)
            assert result["failed"] is True and "Traceback" not in result["_raw"]
            assert result["msg"].startswith("encrypt_to: item 2 is a secret key"), result["msg"]
            assert secret not in result["_raw"] and "b3BlbnNzaC1rZXk" not in result["_raw"]
            assert result["invocation"]["module_args"]["encrypt_to"][0] == public  # a recipient is not hidden
    monkeypatch.setenv("PHOENIX_BACKUP_RECIPIENTS", "%s,%s" % (public, secret))
    result = call(phoenix_backup.main, data, dest=str(refused))
    assert result["msg"].startswith("encrypt_to: item 2 is a secret key") and secret not in result["_raw"]
    assert not list(refused.rglob("backup-*")) and stored_bytes(made) == stored
    assert table_fingerprints(data) == before


def test_a_plain_copy_left_by_a_killed_drill_is_removed_by_the_next_read(data, tmp_path, keys):
    secret, public = keys
    with data.connect() as conn:  # enough rows that decrypting and restoring take a moment
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g"))
    call(phoenix_backup.main, data, dest=str(tmp_path), encrypt_to=[public], format="directory")  # read as files
    elsewhere = tmp_path / "BETA" / ".backup-BETA-20260101T000000000000Z.another-host.1.decrypted"
    elsewhere.mkdir()  # another host's copy in a shared directory: not this host's to judge
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "backup_identity": secret}
    process = module_process("phoenix_restore_drill", args, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not copies(tmp_path, socket.gethostname()):
        time.sleep(0.005)
    left = copies(tmp_path, socket.gethostname())
    assert left, "the drill never decrypted its backup"
    os.killpg(process.pid, signal.SIGKILL)  # the module and the programs it runs
    process.wait()
    assert left[0].exists()  # the plain dump outlived the killed run
    again = call(phoenix_restore_drill.main, data, dest=str(tmp_path), backup_identity=secret)
    assert again.get("passed") is True, again.get("msg")
    assert not copies(tmp_path, socket.gethostname()) and elsewhere.exists()


def copies(root, host: str) -> list:
    return list(root.glob("BETA/.*.%s.*.decrypted" % host))


@pytest.mark.parametrize("fmt", ["custom", "plain", "directory"])
def test_an_encrypted_dump_is_decrypted_on_the_fly_never_plain_on_disk(data, tmp_path, keys, fmt):
    secret, public = keys
    seen: set = set()  # (path under tmp_path, kind)
    watching = threading.Event()

    def watch() -> None:  # every file that appears under the backup directory, and whether it is a FIFO
        while not watching.is_set():
            try:
                for path in tmp_path.rglob("*"):
                    kind = path.lstat().st_mode
                    seen.add((path.relative_to(tmp_path), "fifo" if stat.S_ISFIFO(kind) else
                              "dir" if stat.S_ISDIR(kind) else "file"))
            except FileNotFoundError:  # a file renamed or removed while it was listed
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, encrypt_to=[public], verify=True)
        drilled = call(phoenix_restore_drill.main, data, dest=str(tmp_path), backup_identity=secret)
        restored = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False, backup_identity=secret)
    finally:
        watching.set()
        watcher.join()
    assert made["changed"] and drilled.get("passed") is True and restored["changed"] is True, (
        made.get("msg"), drilled.get("msg"), restored.get("msg"))
    names = {path.name for path, kind in seen}
    if fmt == "directory":  # pg_dump writes it as files, encrypted after; read back, its rows come through FIFOs
        private = [(path, kind) for path, kind in seen if any(part.endswith(".decrypted") for part in path.parts)]
        served = [kind for path, kind in private if path.name.endswith(".dat.gz")]
        assert served and set(served) == {"fifo"}, private
        assert {path.name for path, kind in private if kind == "file"} == {"toc.dat"}, private
        return
    plain_name = {"custom": "database.dump", "plain": "database.sql"}[fmt]
    assert plain_name + ".age" in names and plain_name not in names, names
    assert not [name for name in names if name.endswith(".decrypted")], names


@pytest.mark.parametrize("fmt, dump, problem", [
    ("custom", b"PGDMP\x01not an archive", "pg_restore --list failed"),
    ("plain", b"SET client_encoding = 'UTF8';\n\\! touch /tmp/owned\n", "holds the psql meta-command \\!"),
])
def test_the_check_of_a_dump_encrypted_as_it_is_written_reads_its_plain_bytes(data, tmp_path, fmt, dump, problem):
    pg_restore = binaries.find_tool("pg_restore", int(data.query("SHOW server_version_num")[0][0]) // 10000)
    check = dump_module._StreamedCheck(store.Backup(tmp_path, {"format": fmt}), pg_restore)
    for start in range(0, len(dump), 7):  # in pieces, as pg_dump's output comes
        check.feed(dump[start:start + 7])
    problems = check.finish()
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize("fmt, mode, compress", [("custom", "in_place", "gzip"), ("plain", "in_place", "none"),
                                                 ("directory", "in_place", "none"), ("directory", "swap", "none")])
def test_a_backup_altered_after_its_header_stops_the_restore_and_nothing_of_it_is_kept(
        data, tmp_path, keys, fmt, mode, compress):
    secret, public = keys
    with data.connect() as conn:  # many of age's 64 KiB chunks: the altered one is read long after the first
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT md5(g::text) || lpad(g::text, 31, '.') AS t "
                             "FROM generate_series(1, 50000) g"))
    # rows of 64 bytes: an uncompressed dump cut after a chunk ends between two rows, a cut nothing else notices
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, encrypt_to=[public], compress=compress)
    path = tmp_path / "BETA" / made["backup"]["id"]
    manifest = json.loads((path / "manifest.json").read_text())
    entry = max(manifest["files"], key=lambda f: f["size"])  # of a directory dump: the filler's rows
    stored = bytearray((path / entry["name"]).read_bytes())
    assert len(stored) > 10 * 65536
    stored[-20] ^= 0xFF  # in the last chunk: the identity opens the file, its end does not decrypt
    (path / entry["name"]).write_bytes(bytes(stored))
    entry["sha256"] = hashlib.sha256(stored).hexdigest()  # re-hashed, as whoever can write the directory could
    (path / "manifest.json").write_text(json.dumps(manifest))
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    before = table_fingerprints(data)
    refused = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False, backup_identity=secret,
                   mode=mode)
    assert refused["failed"] is True
    assert "backup %s could not be decrypted to its end" % made["backup"]["id"] in refused["msg"], refused["msg"]
    assert table_fingerprints(data) == before
    assert not list(tmp_path.rglob("*.decrypted"))
    assert data.query("SELECT count(*) FROM pg_database WHERE datname <> %s AND starts_with(datname, %s)",
                      (data.name, data.name))[0][0] == 0  # no new database left by the swap
    if mode == "swap":
        return
    # past the checks that read it first: pg_restore or psql gets the dump cut short, and commits nothing
    backup = store.find_backup(tmp_path, "BETA", made["backup"]["id"])
    major = int(data.query("SHOW server_version_num")[0][0]) // 10000
    with pytest.raises(PhoenixError, match="could not be decrypted to its end"):
        restore.restore_dump(major, data.url, backup, encryption.DumpFiles(backup, encryption.identity(secret)),
                             keep_history=True)
    assert table_fingerprints(data) == before


def test_check_mode_reads_an_encrypted_backup_without_writing_anything(data, tmp_path, keys):
    secret, public = keys
    planned = call(phoenix_backup.main, data, check=True, dest=str(tmp_path), encrypt_to=[public])
    assert planned["changed"] is True and not list(tmp_path.rglob("backup-*"))  # nothing written
    made = call(phoenix_backup.main, data, dest=str(tmp_path), encrypt_to=[public])
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    before, stored = table_fingerprints(data), sorted(tmp_path.rglob("*"))
    for mode in ("in_place", "swap"):
        planned = run_module(phoenix_restore.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path),
                                                    "mode": mode, "backup_identity": secret}, check=True, diff=True)
        assert planned["changed"] is True and planned["restored"]["id"] == made["backup"]["id"], planned.get("msg")
        assert planned["diff"]["before"] != planned["diff"]["after"]
        wrong = call(phoenix_restore.main, data, check=True, dest=str(tmp_path), mode=mode,
                     backup_identity=str(pyrage.x25519.Identity.generate()))
        assert wrong["failed"] is True and "cannot be decrypted with the backup_identity given" in wrong["msg"]
    assert table_fingerprints(data) == before and sorted(tmp_path.rglob("*")) == stored
