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
        C(<name>.age), and the manifest records the recipients and the checksums of the encrypted files. A custom
        or plain dump is encrypted as pg_dump writes it, never on disk in plain; the directory format's files
        once pg_dump has written them.
      - Reading the backup back (restore, drill) needs the identity of one of them (their C(backup_identity)).
      - A secret key given here by mistake (an age identity, a private key) is refused, in check mode too, and
        masked in the task's output. Ansible may still have logged it on the managed node when the module started
        (its journal or syslog), as it does any option not marked secret, so replace that identity.
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
      - Through ansible-runner or AWX, give it as an extra var (the AWX credential type of docs/AWX.md does), not in
        the environment, which ansible-runner writes into C(artifacts/<id>/command).
      - A custom or plain dump is decrypted on the fly into the program that reads it. A directory dump is given
        to pg_restore as a private directory beside it (mode 0700) whose data files are FIFOs, decrypted into as
        they are read; only its table of contents (definitions, no row) is decrypted to a file there. A custom
        dump restored in parallel (C(mode=swap), or a restore drill given C(jobs) above 1), in which pg_restore
        seeks, is decrypted into such a directory.
        Private directories are removed afterwards (one left by a killed run, by the next read on that host).
        Without the identity, or with a wrong one, an encrypted backup is refused before anything is read,
        naming its recipients.
    type: str
"""
