# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  db_url:
    description:
      - libpq connection URI or conninfo string, for example C(postgresql://phoenix@db.example.com:5432/phoenix_beta).
      - When neither O(db_url) nor any C(login_*) option is given, the environment variable E(PHOENIX_DB_URL)
        is used, then E(DATABASE_URL).
      - Mutually exclusive with the C(login_*) options. Treated as a secret.
    type: str
    aliases: [conninfo]
  login_host:
    description: Database host name or Unix socket directory.
    type: str
  login_port:
    description: Database port.
    type: int
  login_user:
    description: Database user.
    type: str
  login_password:
    description: Password of O(login_user). Never shown in output.
    type: str
  login_db:
    description: Database name.
    type: str
  ssl_mode:
    description: libpq C(sslmode).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: CA certificate file to verify the server with (libpq C(sslrootcert)).
    type: path
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  stage:
    description:
      - The stage this run acts on. Falls back to the environment variable E(APP_STAGE).
      - The first M(phoenix.platform.phoenix_schema) run registers the stage in the database (the stage fence);
        afterwards every module refuses to act when the declared stage differs from the registered one.
    type: str
    required: true
    choices: [LOCAL, BETA, PROD]
  actor:
    description:
      - Who is acting, recorded in the audit log.
      - Defaults to C(awx-job-<id>) when run by AWX (E(AWX_JOB_ID) or E(JOB_ID)), otherwise C(user@host).
    type: str
notes:
  - All modules of this collection are in the action group C(phoenix.platform.phoenix), so a play can set
    the connection once with C(module_defaults).
requirements:
  - psycopg >= 3.1
"""

    LOCK_TIMEOUT = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for another run holding the same advisory lock (overlapping scheduled jobs wait,
        then fail with a clear message rather than interleave).
    type: int
    default: 60
"""

    BACKUP_SIGNING = r"""
options:
  backup_signing_key:
    description:
      - Secret key for HMAC-SHA256 signatures of backup manifests. Falls back to E(PHOENIX_BACKUP_SIGNING_KEY);
        keep it in Ansible Vault or an AWX credential, never beside the backups.
      - A backup taken with a key carries the manifest's signature. With a key configured, a backup whose
        manifest is unsigned or does not match is refused before any of its bytes is read or run.
      - "Threat model: whoever can write the backup directory can change a dump and re-hash its manifest; the
        checksums alone then prove nothing, and a plain dump is a script that psql runs as this module's user.
        The signature is what makes a backup directory that others can write safe to restore from. Without a key,
        plain dumps are still checked for psql meta-commands that pg_dump never writes."
    type: str
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying the database.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  action_group:
    description: Use C(group/phoenix.platform.phoenix) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - phoenix.platform.phoenix
"""

    # For modules that only read: ATTRIBUTES with the support levels filled in.
    READ_ONLY = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying the database.
    support: full
    details: Read-only.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  action_group:
    description: Use C(group/phoenix.platform.phoenix) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - phoenix.platform.phoenix
"""
