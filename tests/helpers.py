"""Test helpers: run a module's main() in-process, the way Ansible would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

import yaml
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


def run_module(main: Callable[[], None], args: dict[str, Any], check: bool = False,
               diff: bool = False) -> dict[str, Any]:
    """Run a module and return its JSON result (``failed`` is true when it called fail_json)."""
    stdout = io.StringIO()
    # A module process starts without warnings; in this one process, earlier runs' would be reported again.
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(module_args), contextlib.redirect_stdout(stdout):
        try:
            main()
        except SystemExit:
            pass
    output = stdout.getvalue()
    result = json.loads(output)
    result["_raw"] = output
    return result


# login_* options of a server that is not there (nothing listens on port 1).
UNREACHABLE = {"login_host": "127.0.0.1", "login_port": 1, "login_user": "nobody", "login_db": "nowhere",
               "stage": "BETA", "connect_timeout": 2}


def isolated_environ(**extra: str) -> dict[str, str]:
    """This process's environment for a run of Ansible: without the caller's Phoenix, Ansible and connection
    settings, with this virtualenv's programs first on PATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PHOENIX_", "ANSIBLE_")) and k not in ("APP_STAGE", "DATABASE_URL")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MODULE_SCRIPT = """
import json, sys
from ansible_collections.phoenix.platform.tests.helpers import run_module
from ansible_collections.phoenix.platform.plugins.modules import %s as module
result = run_module(module.main, json.loads(sys.argv[1]))
result.pop("_raw")
print(json.dumps(result))
"""


def module_process(module: str, args: dict[str, Any], **popen: Any) -> subprocess.Popen:
    """Run a module in a process of its own (to kill it part-way, or to read what its process shows); with
    start_new_session=True, killpg reaches it and every program it runs. It prints its result as JSON."""
    return subprocess.Popen([sys.executable, "-c", MODULE_SCRIPT % module, json.dumps(args)],
                            env=dict(os.environ, PYTHONPATH=os.path.join(repo_root(), "collections")), **popen)


def waiting_for_an_advisory_lock(database, seconds: float = 30) -> None:
    """Until a session waits for an advisory lock on the server (another run, started in a process of its own)."""
    for wait in range(int(seconds * 10)):
        if database.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") != [(0,)]:
            return
        time.sleep(0.1)
    raise AssertionError("no session waited for an advisory lock in %s s" % seconds)


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    """The processes below ``root``, now."""
    children, found, level = _children(), [], [root]
    while level:
        level = [child for pid in level for child in children.get(pid, [])]
        found += level
    return found


def kill_tree(root: int) -> dict[int, int]:
    """SIGKILL ``root`` and every process below it, as a machine crash would.

    Killing a process group is not enough: ansible's worker calls setsid, so the module runs in a
    session of its own. Every process found is stopped first, so none can fork or exit (re-parenting
    its children away) while the tree is collected; then all are killed. Returns pid -> session id
    of every process killed."""
    stopped: dict[int, int] = {}
    level = [root]
    while level:  # one level of the tree at a time: stop it, then read /proc once for its children
        for pid in level:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped[pid] = os.getsid(pid)
        children = _children()
        level = [child for pid in level if pid in stopped for child in children.get(pid, [])]
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stopped


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class _YamlWithUnsafe(yaml.SafeLoader):
    """YAML as Ansible writes it; ``!unsafe`` values read as the plain strings they are."""


_YamlWithUnsafe.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path: str) -> Any:
    """A vars file, without importing Ansible's controller code (which reroutes module warnings in this process)."""
    with open(path) as handle:
        return yaml.load(handle, Loader=_YamlWithUnsafe)  # noqa: S506 - a SafeLoader subclass


def miscount(dest: Any, stage: str, backup_id: str, table: str, by: int) -> None:
    """Make an unsigned backup's manifest say ``table`` holds ``by`` rows more than it does."""
    path = os.path.join(dest, stage, backup_id, "manifest.json")
    with open(path) as handle:
        manifest = json.load(handle)
    manifest["row_counts"][table] += by
    with open(path, "w") as handle:
        json.dump(manifest, handle)


class DiskFull:
    """``shutil.disk_usage`` of a disk with 1 MB free; records the paths asked about."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.measure = shutil.disk_usage

    def __call__(self, path):
        self.paths.append(str(path))
        total = self.measure(path).total
        return type(self.measure(path))(total, total - 1_000_000, 1_000_000)
