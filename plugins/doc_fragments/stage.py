# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The stage option group (STAGE_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  stage:
    description:
      - The stage this run acts on. Falls back to the environment variable E(APP_STAGE).
      - The first M(phoenix.platform.phoenix_schema) run registers the stage in the database (the stage fence);
        afterwards every module refuses to act when the declared stage differs from the registered one.
      - A module that writes to the database refuses, before anything and in check mode too, a standby (a server in
        recovery, which takes no writes) and a role or database whose transactions are read-only
        (C(default_transaction_read_only)). Point it at the primary.
    type: str
    required: true
    choices: [LOCAL, BETA, PROD]
  actor:
    description:
      - Who is acting, recorded in the audit log.
      - Defaults to C(awx-job-<id>) when run by AWX (E(AWX_JOB_ID) or E(JOB_ID)), otherwise C(user@host).
    type: str
"""
