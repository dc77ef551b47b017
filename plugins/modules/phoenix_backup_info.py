#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_backup_info
short_description: List the backups of a stage
version_added: 0.1.0
description:
  - Lists the complete backups (those with a C(manifest.json)) under C(<dest>/<STAGE>/), oldest first.
  - Reads only the backup directory; it does not connect to the database.
options:
  dest:
    description: Backup root. Falls back to E(PHOENIX_BACKUP_DIR).
    type: path
    required: true
  stage:
    description: The stage whose backups to list. Falls back to E(APP_STAGE).
    type: str
    required: true
    choices: [LOCAL, BETA, PROD]
  kind:
    description: Only backups of this kind.
    type: str
    choices: [scheduled, pre-deploy, pre-restore, manual]
  verify:
    description: Re-read every backup's checksums and report the result as C(checksums_ok).
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.backup_signing
attributes:
  check_mode:
    description: Can run in check_mode.
    support: full
    details: Read-only.
  diff_mode:
    description: Will return details on what has changed.
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Backups of BETA
  phoenix.platform.phoenix_backup_info:
    dest: /var/backups/phoenix
    stage: BETA
  register: beta_backups
"""

RETURN = r"""
backups:
  description: Backups, oldest first, with C(id), C(path), C(kind), C(stage), C(format), C(created_at), C(age_hours),
    C(size), C(verified) (when pg_restore last verified it), C(standby) (for a backup taken on a standby, when the
    last change it replayed was committed, C(last_replayed_commit); else null), C(checksums_ok) with O(verify), and
    C(signature_ok) with O(backup_signing_key). Directories without a valid manifest (partial or damaged) and links are not
    backups and are not listed.
  returned: success
  type: list
  elements: dict
latest:
  description: The newest backup, or null.
  returned: success
  type: dict
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import STAGE_OPTIONS


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True, "fallback": (env_fallback, ["PHOENIX_BACKUP_DIR"])},
            "stage": STAGE_OPTIONS["stage"],
            "kind": {"type": "str", "choices": list(store.KINDS)},
            "verify": {"type": "bool", "default": False},
            **store.SIGNING_OPTIONS,
        },
        supports_check_mode=True,
    )
    now = store.utcnow()
    backups = [b for b in store.list_backups(Path(module.params["dest"]), module.params["stage"])
               if module.params["kind"] in (None, b.manifest["kind"])]
    listed = []
    for backup in backups:
        entry = backup.summary(now)
        if module.params["verify"]:
            entry["checksums_ok"] = not store.verify_checksums(backup)
        if module.params["backup_signing_key"]:
            entry["signature_ok"] = store.signature_problem(backup, module.params["backup_signing_key"]) is None
        listed.append(entry)
    module.exit_json(changed=False, backups=listed, latest=listed[-1] if listed else None)


if __name__ == "__main__":
    main()
