# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option groups: the one definition of every option that more than one module takes.

A module spreads the groups it needs into its own spec; the doc fragments of the same
names (``phoenix.platform.connection``, ``.stage``, ``.lock``) document them.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import LOGIN_OPTIONS, SSL_MODES
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import STAGES

Spec = dict[str, dict[str, Any]]

CONNECTION_OPTIONS: Spec = {
    "db_url": {"type": "str", "no_log": True, "aliases": ["conninfo"]},
    "login_host": {"type": "str"},
    "login_port": {"type": "int"},
    "login_user": {"type": "str"},
    "login_password": {"type": "str", "no_log": True},
    "login_db": {"type": "str"},
    "ssl_mode": {"type": "str", "choices": list(SSL_MODES)},
    "ca_cert": {"type": "path"},
    "connect_timeout": {"type": "int", "default": 10},
}

# A URL and login_* describe the same thing twice; AnsibleModule refuses the pair by name.
CONNECTION_EXCLUSIVE: list[list[str]] = [["db_url", login] for login in LOGIN_OPTIONS]

STAGE_OPTIONS: Spec = {
    "stage": {"type": "str", "required": True, "choices": list(STAGES), "fallback": (env_fallback, ["APP_STAGE"])},
    "actor": {"type": "str"},
}

LOCK_OPTIONS: Spec = {"lock_timeout": {"type": "int", "default": 60}}

ALLOW_PROD_OPTIONS: Spec = {"allow_prod": {"type": "bool", "default": False}}

# Rows arriving in a database whose triggers maintain some columns (transfers, seed imports)
MAINTAINED_OPTIONS: Spec = {"maintained_columns": {"type": "list", "elements": "str"}}

# Rows copied under another world id (clones, imports under another id, transfers with a rename)
TRANSFORM_OPTIONS: Spec = {"column_transforms": {"type": "dict"}}


def database_suboptions() -> dict[str, Any]:
    """A second database as one dict option (a transfer's source): the connection group and its stage.

    Its stage has no environment fallback: APP_STAGE names the stage this run acts on, not the other side's.
    """
    options = dict(CONNECTION_OPTIONS, stage={"type": "str", "required": True, "choices": list(STAGES)})
    return {"type": "dict", "options": options, "mutually_exclusive": CONNECTION_EXCLUSIVE}
