# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The backup signing option (SIGNING_OPTIONS in module_utils/_backups/store.py).
    DOCUMENTATION = r"""
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
