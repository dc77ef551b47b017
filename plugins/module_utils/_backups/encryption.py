# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups encrypted at rest with age (pyrage): every dump file becomes ``<name>.age`` for the recipients given.

The public recipients (``age1...``) live in the inventory; the identity (``AGE-SECRET-KEY-1...``) that decrypts
comes from Vault or an AWX credential only when a backup is read back. Files are streamed through the cipher, never
held in memory whole. Reading an encrypted backup decrypts it into a private directory beside it (mode 0700),
removed when the restore or check is done; one left by a killed run is removed by the next read on that host.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any, Iterator

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    import pyrage
except ImportError:  # only backups that ask for encryption need it
    pyrage = None

SUFFIX = ".age"
COPY_SUFFIX = ".decrypted"
COPY_OWNER = re.compile(r"^\.[^.]+\.(?P<host>.+)\.(?P<pid>\d+)\.decrypted$")  # .<backup id>.<host>.<pid>.decrypted
RECIPIENT_OPTIONS: dict[str, dict[str, Any]] = {
    "encrypt_to": {"type": "list", "elements": "str", "fallback": (env_fallback, ["PHOENIX_BACKUP_RECIPIENTS"])},
}
IDENTITY_OPTIONS: dict[str, dict[str, Any]] = {
    "backup_identity": {"type": "str", "no_log": True, "fallback": (env_fallback, ["PHOENIX_BACKUP_IDENTITY"])},
}


def _library():
    if pyrage is None:
        raise PhoenixError("encrypted backups need the pyrage library on the managed node (pip install pyrage)")
    return pyrage


def recipients(values: list[str]) -> list[Any]:
    """age X25519 recipients, each checked; a typo names the one that is wrong."""
    library = _library()
    parsed = []
    for value in values:
        try:
            parsed.append(library.x25519.Recipient.from_str(value.strip()))
        except library.RecipientError:
            raise PhoenixError("encrypt_to: %r is not an age recipient (age1... , as age-keygen prints it)"
                               % value) from None
    return parsed


def identity(text: str) -> Any:
    library = _library()
    try:
        return library.x25519.Identity.from_str(text.strip())
    except library.IdentityError:
        raise PhoenixError("backup_identity is not an age identity (AGE-SECRET-KEY-1..., as age-keygen writes "
                           "it)") from None


def encrypt_tree(root: Path, to: list[Any]) -> None:
    """Replace every file under ``root`` by its encryption for ``to``."""
    library = _library()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = path.with_name(path.name + SUFFIX)
        with open(path, "rb") as plain, open(target, "wb") as sealed:
            library.encrypt_io(plain, sealed, to)
            sealed.flush()
            os.fsync(sealed.fileno())
        os.chmod(target, 0o600)
        path.unlink()


def is_encrypted(backup: store.Backup) -> bool:
    return bool(backup.manifest.get("encryption"))


@contextlib.contextmanager
def readable(backup: store.Backup, identity_text: str | None, unsound: bool = False) -> Iterator[Path | None]:
    """The directory to read the backup's dump from: its own, or a decrypted private copy while in use. An
    ``unsound`` backup (its stored bytes failed their checksums) is not read at all: None."""
    if unsound:
        yield None
        return
    if not is_encrypted(backup):
        yield backup.path
        return
    if not identity_text:
        raise PhoenixError("backup %s is encrypted to %s; give backup_identity (the age identity, from Vault or an "
                           "AWX credential; env PHOENIX_BACKUP_IDENTITY) to read it"
                           % (backup.id, ", ".join(backup.manifest["encryption"]["recipients"])))
    key = identity(identity_text)
    library = _library()
    remove_orphaned_copies(backup.path.parent)
    copy = backup.path.parent / (".%s.%s.%d%s" % (backup.id, socket.gethostname(), os.getpid(), COPY_SUFFIX))
    copy.mkdir(mode=0o700)
    try:
        for entry in backup.manifest["files"]:
            sealed = backup.path / entry["name"]
            plain = copy / entry["name"][:-len(SUFFIX)]
            plain.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(sealed, "rb") as source, open(plain, "wb") as sink:
                try:
                    library.decrypt_io(source, sink, [key])
                except library.DecryptError:
                    raise PhoenixError("backup %s cannot be decrypted with the backup_identity given: it is "
                                       "encrypted to %s" % (backup.id, ", ".join(
                                           backup.manifest["encryption"]["recipients"]))) from None
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def remove_orphaned_copies(root: Path) -> None:
    """Remove the plain copies that killed runs on this host left behind (their process is gone)."""
    for copy in root.glob(".*" + COPY_SUFFIX):
        owner = COPY_OWNER.match(copy.name)  # the backup directory may be shared: only this host's are judged
        if owner and owner.group("host") == socket.gethostname() and not _alive(int(owner.group("pid"))):
            shutil.rmtree(copy, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
