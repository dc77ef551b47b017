# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written so that a killed run leaves the old state or the new one: hashing and fsync."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks (flat memory)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data`` to the file descriptor ``fd`` (a pipe may take fewer at a time)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_path(path: Path) -> None:
    """Flush a file or a directory (a directory's fsync makes renames in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def secure_tree(root: Path) -> None:
    """Directories 0700, files 0600: backups and seeds hold emails and password hashes."""
    for path in [root] + list(root.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)


def write_json(path: Path, document: Any) -> None:
    """Write a JSON document (sorted, indented) and fsync it."""
    with open(path, "w") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if done == 0:
        fsync_path(second.parent)
    return done == 0


def default_state_home(environ: Mapping[str, str] | None = None) -> str:
    """Where state lives unless told otherwise: $PHOENIX_HOME, else $XDG_DATA_HOME/phoenix, else
    ~/.local/share/phoenix (outside any collection and outside AWX's per-job project copy)."""
    environ = os.environ if environ is None else environ
    if environ.get("PHOENIX_HOME"):
        return environ["PHOENIX_HOME"]
    data = environ.get("XDG_DATA_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "phoenix")


def installed_collection_holding(path: str) -> Path | None:
    """The installed collection directory ``path`` lies in (as given or with links resolved), or None.

    An installed collection (one with a MANIFEST.json) is replaced whole by ``ansible-galaxy collection
    install --force``, and AWX copies projects per job: state kept there is lost."""
    for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
        parts = candidate.parts
        for index in range(len(parts) - 3, 0, -1):
            if parts[index] == "ansible_collections":
                root = Path(*parts[:index + 3])
                if (root / "MANIFEST.json").is_file():
                    return root
    return None


def state_path_problem(params: dict[str, Any], options: tuple[str, ...]) -> str | None:
    """Why one of ``options`` (paths state is written to) cannot be used, or None."""
    for option in options:
        if params.get(option):
            collection = installed_collection_holding(params[option])
            if collection is not None:
                return ("%s=%s lies inside the installed collection %s, which `ansible-galaxy collection install "
                        "--force` replaces (and AWX copies per job): keep state in a directory of its own, e.g. set "
                        "PHOENIX_HOME or phoenix_home (default ~/.local/share/phoenix)"
                        % (option, params[option], collection))
    return None
