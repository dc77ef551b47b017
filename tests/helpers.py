"""Test helpers: run a module's main() in-process, the way Ansible would."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from typing import Any, Callable

from ansible.module_utils.testing import patch_module_args


def run_module(main: Callable[[], None], args: dict[str, Any], check: bool = False,
               diff: bool = False) -> dict[str, Any]:
    """Run a module and return its JSON result (``failed`` is true when it called fail_json)."""
    stdout = io.StringIO()
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
