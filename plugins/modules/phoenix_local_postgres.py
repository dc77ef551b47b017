#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_local_postgres
short_description: A PostgreSQL cluster in a local directory (the embedded Phoenix database)
version_added: 0.1.0
description:
  - Initialises, starts, stops or removes a PostgreSQL cluster under O(base_dir) and creates O(databases).
  - Uses the system's PostgreSQL binaries when present, otherwise those of the C(pgserver) wheel.
  - As root, the server runs as O(os_user) because PostgreSQL refuses to run as root.
options:
  state:
    description: V(present) initialises, V(started) also runs it, V(stopped) stops it, V(absent) removes it.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  base_dir:
    description: Directory that holds C(data/), C(run/) (the Unix socket) and C(server.log).
    type: path
    required: true
  port:
    description: Port of the server (it listens on 127.0.0.1 and on the socket in C(run/)).
    type: int
    default: 55432
  databases:
    description: Databases to create when the server is started.
    type: list
    elements: str
    default: []
  bin_source:
    description: Where the server binaries come from; V(auto) prefers the system's.
    type: str
    choices: [auto, system, pgserver]
    default: auto
  os_user:
    description:
      - OS user that runs the server when this module runs as root.
      - Created as a system user without a login shell when it does not exist (a machine without PostgreSQL packages).
    type: str
    default: postgres
  settings:
    description: Extra C(postgresql.conf) settings, for example C(fsync=off) for a throwaway cluster.
    type: dict
    default: {}
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Embedded database for all three stages
  phoenix.platform.phoenix_local_postgres:
    base_dir: "{{ playbook_dir }}/../.phoenix"
    databases: [phoenix_local, phoenix_beta, phoenix_prod]
"""

RETURN = r"""
socket_dir:
  description: Unix socket directory; connect with C(host=<socket_dir> port=<port> user=postgres).
  returned: always
  type: str
port:
  description: Server port.
  returned: always
  type: int
status:
  description: C(absent), C(stopped) or C(running) after the run.
  returned: always
  type: str
bin_dir:
  description: The binaries used.
  returned: when the cluster exists
  type: str
databases_created:
  description: Databases created by this run.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import state_path_problem
from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import BIN_SOURCES, LocalCluster

STATES = ("present", "started", "stopped", "absent")


def predict(cluster: LocalCluster, state: str) -> bool:
    """Whether ``state`` would change anything (check mode)."""
    current = cluster.status()
    return {
        "present": current == "absent",
        "started": current != "running",
        "stopped": current == "running",
        "absent": cluster.base_dir.exists(),
    }[state]


def apply(cluster: LocalCluster, state: str, databases: list[str]) -> tuple[bool, list[str]]:
    with cluster.locked():
        if state == "present":
            return cluster.ensure_initialised(), []
        if state == "stopped":
            return cluster.ensure_stopped(), []
        if state == "absent":
            return cluster.ensure_absent(), []
        changed = cluster.ensure_running()
        created = cluster.ensure_databases(databases)
        return changed or bool(created), created


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": list(STATES), "default": "started"},
            "base_dir": {"type": "path", "required": True},
            "port": {"type": "int", "default": 55432},
            "databases": {"type": "list", "elements": "str", "default": []},
            "bin_source": {"type": "str", "choices": list(BIN_SOURCES), "default": "auto"},
            "os_user": {"type": "str", "default": "postgres"},
            "settings": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    problem = state_path_problem(params, ("base_dir",))
    if problem and params["state"] != "absent":  # removing a cluster from there is what the advice asks for
        module.fail_json(msg=problem)
    cluster = LocalCluster(params["base_dir"], params["port"], params["bin_source"], params["os_user"],
                           {k: str(v) for k, v in params["settings"].items()})
    try:
        if module.check_mode:
            changed, created = predict(cluster, params["state"]), []
        else:
            changed, created = apply(cluster, params["state"], params["databases"])
        status = cluster.status()
        bin_dir = str(cluster.bin_dir) if status != "absent" else None
    except PhoenixError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(changed=changed, status=status, socket_dir=str(cluster.socket_dir), port=cluster.port,
                     bin_dir=bin_dir, databases_created=created)


if __name__ == "__main__":
    main()
