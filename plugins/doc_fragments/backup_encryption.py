# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Encryption at rest with age (module_utils/_backups/encryption.py).
    DOCUMENTATION = r"""
options:
  encrypt_to:
    description:
      - age recipients (public keys, C(age1...) as C(age-keygen) prints them) to encrypt the backup's files to;
        falls back to E(PHOENIX_BACKUP_RECIPIENTS) (comma-separated). Each file is streamed through age into
        C(<name>.age), and the manifest records the recipients and the checksums of the encrypted files.
      - Reading the backup back (restore, drill) needs the identity of one of them (their C(backup_identity)).
      - Needs the pyrage library on the managed node.
    type: list
    elements: str
"""

    IDENTITY = r"""
options:
  backup_identity:
    description:
      - The age identity (C(AGE-SECRET-KEY-1...)) that decrypts an encrypted backup; falls back to
        E(PHOENIX_BACKUP_IDENTITY). Keep it in Ansible Vault or an AWX credential, never beside the backups.
      - The backup is decrypted into a private directory beside it (mode 0700) while it is checked and restored,
        and that directory is removed afterwards (one left by a killed run, by the next read on that host).
        Without it, an encrypted backup is refused, naming its recipients.
    type: str
"""
