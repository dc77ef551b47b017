# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups encrypted at rest with age (pyrage): every dump file becomes ``<name>.age`` for the recipients given.

The public recipients (``age1...``) live in the inventory; the identity (``AGE-SECRET-KEY-1...``) that decrypts
comes from Vault or an AWX credential only when a backup is read back. Files are streamed through the cipher, never
held in memory whole; a custom or plain dump is encrypted on its way from pg_dump to the disk. A program that reads
a dump from start to end (``pg_restore --list``, a restore in one transaction, psql) gets it decrypted on the fly
through a pipe. A directory dump is given to the program as a private directory (mode 0700) beside the backup:
its table of contents decrypted (definitions, no row), every data file a FIFO decrypted into as the program reads
it. No row reaches the disk in plain, except from a custom dump restored in parallel (``pg_restore -j`` seeks in
it): that one is decrypted into a private directory. Each private directory is removed when the program is done;
one left by a killed run is removed by the next read on that host.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import threading
from pathlib import Path
from typing import Any, BinaryIO, ContextManager, Iterator

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import write_all

try:
    import pyrage
except ImportError:  # only backups that ask for encryption need it
    pyrage = None

SUFFIX = ".age"
COPY_SUFFIX = ".decrypted"
TABLE_OF_CONTENTS = "toc.dat"  # of a directory dump: pg_restore accepts only a regular file there
PROCESSES = Path("/proc")  # where the readers of a FIFO are found: without it, directory dumps are copied
COPY_OWNER = re.compile(r"^\.[^.]+\.(?P<host>.+)\.(?P<pid>\d+)\.decrypted$")  # .<backup id>.<host>.<pid>.decrypted
SECRET_KEY = re.compile(r"AGE-SECRET-KEY-|PRIVATE KEY", re.IGNORECASE)  # an age identity, a PEM or OpenSSH key
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
    """age X25519 recipients, each checked; a typo names the one that is wrong, a secret key given in the place of
    one is never shown."""
    library = _library()
    parsed = []
    for number, value in enumerate(values, 1):
        if SECRET_KEY.search(value):
            raise PhoenixError("encrypt_to: item %d is a secret key (an age identity or a private key), not a "
                               "recipient; give the recipient that belongs to it (age1..., which age-keygen -y "
                               "prints from the identity) and keep the identity in Vault or an AWX credential. The "
                               "value is not shown" % number, secrets=[value])
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


def encrypt_stream(plain: Any, sealed: Any, to: list[Any]) -> None:
    """Encrypt what ``plain.read`` gives into ``sealed.write`` for the recipients ``to``, a chunk at a time."""
    _library().encrypt_io(plain, sealed, to)


def encrypt_tree(root: Path, to: list[Any]) -> None:
    """Replace every file under ``root`` by its encryption for ``to``."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = path.with_name(path.name + SUFFIX)
        with open(path, "rb") as plain, open(target, "wb") as sealed:
            encrypt_stream(plain, sealed, to)
            sealed.flush()
            os.fsync(sealed.fileno())
        os.chmod(target, 0o600)
        path.unlink()


def is_encrypted(backup: store.Backup) -> bool:
    return bool(backup.manifest.get("encryption"))


@contextlib.contextmanager
def readable(backup: store.Backup, identity_text: str | None, unsound: bool = False) -> Iterator[DumpFiles | None]:
    """The backup's dump files, ready to be read (decrypted as they are read, with ``identity_text``, when the
    backup is encrypted). An ``unsound`` backup (its stored bytes failed their checksums) is not read at all: None.
    A wrong or missing identity fails here, before anything is read or written."""
    if unsound:
        yield None
        return
    if not is_encrypted(backup):
        yield DumpFiles(backup)
        return
    if not identity_text:
        raise PhoenixError("backup %s is encrypted to %s; give backup_identity (the age identity, from Vault or an "
                           "AWX credential; env PHOENIX_BACKUP_IDENTITY) to read it"
                           % (backup.id, ", ".join(backup.manifest["encryption"]["recipients"])))
    files = DumpFiles(backup, identity(identity_text))
    files.check_identity()
    try:
        yield files
    finally:
        files.remove_copy()


class DumpFiles:
    """A verified backup's dump, as the programs that read it need it: one file as a stream of its plain bytes,
    or the whole dump as files under a directory."""

    def __init__(self, backup: store.Backup, key: Any = None) -> None:
        self.backup = backup
        self.key = key  # the age identity of an encrypted backup
        self._copy: Path | None = None
        # tables of contents, read once, by program and dump: pg_restore --list (dump.list_dump), a plain dump's
        # own reading (dump.read_plain)
        self.listings: dict[tuple[str, str], Any] = {}

    def stream(self, name: str) -> ContextManager[BinaryIO]:
        """The plain bytes of the dump file ``name``: the file itself, or its decryption through a pipe (with a
        file descriptor, for a program's stdin). A decryption that fails part-way raises at the end of the stream
        instead of ending it early, so no reader takes a cut dump for a whole one."""
        if self.key is None:
            return open(self.backup.path / name, "rb")
        return _DecryptingPipe(self.backup, self.backup.path / (name + SUFFIX), self.key)

    def root(self) -> Path:
        """A directory holding the plain dump files: the backup's own, or a private decrypted copy, made once."""
        if self.key is None:
            return self.backup.path
        if self._copy is None:
            self._copy = self._decrypted_copy()
        return self._copy

    @contextlib.contextmanager
    def program_input(self, name: str, seekable: bool = False) -> Iterator[tuple[list[str], BinaryIO | None]]:
        """``(arguments, stdin)`` that give a program (pg_restore) the dump ``name``, for one run: its path when it
        is a directory or must be ``seekable`` (a parallel pg_restore), else its stream on stdin. An encrypted
        directory dump is served file by file (see ``_ServedDirectory``); the end of the block raises when one of
        its files could not be decrypted to its end."""
        directory = self.backup.manifest["format"] == "directory"
        if directory and self.key is not None and PROCESSES.joinpath("self", "fd").is_dir():
            with _ServedDirectory(self.backup, self.key, self._private_path()) as root:
                yield [str(root / name)], None
            return
        if seekable or directory:
            yield [str(self.root() / name)], None
            return
        with self.stream(name) as stdin:
            yield [], stdin

    def copied_to_seek(self) -> bool:
        """Whether a program that seeks in the dump (a parallel pg_restore) gets a decrypted copy of it on disk, where
        one that reads it through once gets a stream (a directory dump is given the same way to both)."""
        return self.key is not None and self.backup.manifest["format"] != "directory"

    def check_identity(self) -> None:
        """Whether the identity opens the backup: the header of its first file is decrypted, no more."""
        entries = self.backup.manifest["files"]
        if not entries:  # nothing to open; reading the dump fails on its own
            return
        with open(self.backup.path / entries[0]["name"], "rb") as sealed:
            try:
                _library().decrypt_io(sealed, _StopAtFirstByte(), [self.key])
            except _Opened:
                return
            except _library().DecryptError:
                raise PhoenixError("backup %s cannot be decrypted with the backup_identity given: it is encrypted "
                                   "to %s" % (self.backup.id, ", ".join(
                                       self.backup.manifest["encryption"]["recipients"]))) from None
            except OSError as exc:  # opened, but its first chunk does not decrypt
                raise cut_short(self.backup, exc) from None

    def remove_copy(self) -> None:
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def _private_path(self) -> Path:
        """Where this process may put plain files of the backup, beside it (the same filesystem, for its space)."""
        remove_orphaned_copies(self.backup.path.parent)
        return self.backup.path.parent / (".%s.%s.%d%s" % (self.backup.id, socket.gethostname(), os.getpid(),
                                                           COPY_SUFFIX))

    def _decrypted_copy(self) -> Path:
        copy = self._private_path()
        copy.mkdir(mode=0o700)
        try:
            for entry in self.backup.manifest["files"]:
                _decrypt_file(self.backup.path / entry["name"], copy / entry["name"][:-len(SUFFIX)], self.key)
        except (_library().DecryptError, OSError) as exc:
            shutil.rmtree(copy, ignore_errors=True)
            raise cut_short(self.backup, exc) from None
        except BaseException:
            shutil.rmtree(copy, ignore_errors=True)
            raise
        return copy


def _decrypt_file(sealed: Path, plain: Path, key: Any) -> None:
    plain.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(sealed, "rb") as source, open(plain, "wb") as sink:
        _library().decrypt_io(source, sink, [key])


def cut_short(backup: store.Backup, failure: BaseException) -> PhoenixError:
    """A decryption that failed after the identity opened the backup: its stored bytes were altered."""
    return PhoenixError("backup %s could not be decrypted to its end (%s); nothing read from it was kept"
                        % (backup.id, failure))


class _Opened(Exception):
    """The identity opened the file: its first plain byte came out."""


class _StopAtFirstByte:
    def write(self, data: bytes) -> int:
        raise _Opened()

    def flush(self) -> None:
        pass


class _PipeWriter:
    """The write end of a pipe, for pyrage: unbuffered, every byte written."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        write_all(self.fd, data)
        return len(data)

    def flush(self) -> None:
        pass


class _DecryptingPipe(io.RawIOBase):
    """The read end of a pipe that a thread fills with the decryption of ``sealed``. A program may read it
    (``fileno()``) or Python may; either may stop early (``pg_restore --list`` reads the table of contents only).
    When the decryption failed, the end of the stream and the end of the ``with`` block raise."""

    def __init__(self, backup: store.Backup, sealed: Path, key: Any) -> None:
        super().__init__()
        self.backup = backup
        self._read_fd, write_fd = os.pipe()
        self._failure: BaseException | None = None
        self._pump = threading.Thread(target=self._decrypt, args=(sealed, key, write_fd), daemon=True)
        self._pump.start()

    def _decrypt(self, sealed: Path, key: Any, write_fd: int) -> None:
        try:
            with open(sealed, "rb") as source:
                _library().decrypt_io(source, _PipeWriter(write_fd), [key])
        except BrokenPipeError:  # the reader had read all it wanted
            pass
        except BaseException as exc:  # surfaced to the reader, in its thread
            self._failure = exc
        finally:
            os.close(write_fd)

    def __enter__(self) -> BinaryIO:
        return io.BufferedReader(self, 1 << 20)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._read_fd

    def readinto(self, buffer) -> int:
        count = os.readv(self._read_fd, [buffer])
        if count == 0:
            self._pump.join()
            self._raise_failure()
        return count

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise cut_short(self.backup, self._failure) from None

    def __exit__(self, *exc_info) -> None:
        os.close(self._read_fd)  # a pump still writing stops with a broken pipe
        self._pump.join()
        super().__exit__(*exc_info)
        self._raise_failure()


class _ServedDirectory:
    """A private directory holding a directory dump for one run of a program. Its table of contents is decrypted
    there; every other file is a FIFO, and a thread decrypts the file into it once the program opens it (pg_restore
    opens each data file once, in a restore in one transaction and in parallel alike). A decryption that fails
    part-way must not end the FIFO: its readers would take the cut rows for all of them, and a restore in one
    transaction would commit them. They are killed instead, and the end of the ``with`` block raises."""

    def __init__(self, backup: store.Backup, key: Any, path: Path) -> None:
        self.backup, self.key, self.path = backup, key, path
        self._served: list[tuple[Path, threading.Thread]] = []
        self._failure: BaseException | None = None
        self._closing = False

    def __enter__(self) -> Path:
        self.path.mkdir(mode=0o700)
        try:
            for entry in self.backup.manifest["files"]:
                sealed = self.backup.path / entry["name"]
                plain = self.path / entry["name"][:-len(SUFFIX)]
                if plain.name == TABLE_OF_CONTENTS:
                    self._decrypt_table_of_contents(sealed, plain)
                    continue
                plain.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.mkfifo(plain, 0o600)
                thread = threading.Thread(target=self._serve, args=(sealed, plain), daemon=True)
                thread.start()
                self._served.append((plain, thread))
        except BaseException:
            self._close()
            raise
        return self.path

    def _decrypt_table_of_contents(self, sealed: Path, plain: Path) -> None:
        try:
            _decrypt_file(sealed, plain, self.key)
        except (_library().DecryptError, OSError) as exc:
            raise cut_short(self.backup, exc) from None

    def _serve(self, sealed: Path, fifo: Path) -> None:
        fd = os.open(fifo, os.O_WRONLY)  # waits for the program to open it (or for the end of the run)
        try:
            if not self._closing:
                with open(sealed, "rb") as source:
                    _library().decrypt_io(source, _PipeWriter(fd), [self.key])
        except BrokenPipeError:  # the reader had read all it wanted
            pass
        except BaseException as exc:  # the FIFO stays open, its readers are stopped before they can see its end
            self._failure = self._failure or exc
            for pid in _readers_of(fifo):
                os.kill(pid, signal.SIGKILL)
        finally:
            os.close(fd)

    def __exit__(self, *exc_info) -> None:
        self._close()
        if self._failure is not None:
            raise cut_short(self.backup, self._failure) from None

    def _close(self) -> None:
        """Let every thread go (one still waiting for a reader is given one that reads nothing), then remove the
        directory."""
        self._closing = True
        for fifo, thread in self._served:
            while thread.is_alive():
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
                thread.join(0.05)
        shutil.rmtree(self.path, ignore_errors=True)


def _readers_of(fifo: Path) -> list[int]:
    """The processes, other than this one, that have ``fifo`` open."""
    readers, target = [], os.path.abspath(fifo)
    for process in PROCESSES.glob("[0-9]*"):
        if process.name == str(os.getpid()):
            continue
        try:
            if any(os.readlink(fd) == target for fd in (process / "fd").iterdir()):
                readers.append(int(process.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return readers


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
