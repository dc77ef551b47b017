#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_seed
short_description: Export a world to a seed directory, import one, or remove orphaned blobs
version_added: 0.1.0
description:
  - V(exported) writes C(seed.json) (format version, source, world metadata, per table its file, row count and
    sha256), one JSON Lines file per table streamed with C(COPY ... TO STDOUT), the blob files the world's rows
    reference under C(blob/), and a C(README.md). The directory is written under a temporary name and renamed into
    place; an export identical to the existing one changes nothing.
  - A seed holds rows, not large objects. An export of a world whose rows point at large objects (a column of type
    C(oid), or of a domain over it) fails before anything is written, naming the columns, as the OIDs would point at
    other large objects, or none, where the seed is imported; send such a column as NULL (O(mask)).
  - V(imported) validates the manifest and every checksum first, then writes in one transaction (re-keying UUID
    keys when O(world) renames the world). It also reads seed directories of the original Phoenix seed manager
    (format version C(1.0.0)); fields it does not know become warnings.
  - V(orphans_removed) deletes files in O(blob_dir) that no row references.
options:
  state:
    description: What to do.
    type: str
    choices: [exported, imported, orphans_removed]
    required: true
  world:
    description:
      - With V(exported), the world to export (required).
      - With V(imported), the world id to import under (default the seed's own); another id re-keys the rows.
    type: str
  dest:
    description:
      - Seed directory to write (V(exported)). It must be new, empty, or an earlier export, which is replaced in
        one atomic step; a directory holding anything else, or a file, is refused. Files are 0600, directories 0700.
    type: path
  src:
    description: Seed directory to read (V(imported)).
    type: path
  include_blobs:
    description: Export the blob files the world's rows reference.
    type: bool
    default: true
  conflict:
    description:
      - What happens to rows whose keys already exist (V(imported)).
      - V(skip) keeps the existing rows; V(merge) updates them from the seed; V(replace) also deletes the world's rows
        that the seed does not hold.
    type: str
    choices: [skip, replace, merge]
    default: skip
  blob_dir:
    description:
      - The environment's blob directory. Falls back to E(PHOENIX_BLOB_DIR).
      - A blob directory holds one file per key and nothing else; V(orphans_removed) refuses a directory that holds
        directories (the filesystem root, C(/etc), the parent of the blob directory), where a mistyped path would
        lose every file.
    type: path
  blob_columns:
    description: Columns (C(Table.column)) whose values reference blobs as C(blob:<key>).
    type: list
    elements: str
    default: [A_Image.url]
  allow_prod:
    description: Allow importing into PROD and removing blobs there. Exporting from PROD is always allowed.
    type: bool
    default: false
  mask:
    description:
      - Per column C(Table.column) a transformer for V(exported) - C(null), C(hash_email), C(fake_name), C(keep) or
        C({constant. value}), as in M(phoenix.platform.phoenix_transfer). Unknown columns are an error.
      - An export from PROD applies the transfer's default masking profile, with these rules over it.
    type: dict
  allow_unmasked:
    description: Allow an export from PROD to keep personal data unmasked.
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.maintained
  - phoenix.platform.transforms
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details:
      - V(exported) reports whether the directory would change. V(orphans_removed) lists the files.
      - V(imported) validates the seed and analyses conflicts (rows per table that exist already, missing blobs)
        by running the import in a transaction that is rolled back, so the counts are exact and nothing is kept.
  diff_mode:
    support: none
requirements:
  - pydantic >= 2
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Export a world from PROD to a local directory
  phoenix.platform.phoenix_seed:
    state: exported
    world: ENTERPRISE_ONBOARDING
    dest: /srv/seeds/ENTERPRISE_ONBOARDING
    blob_dir: /srv/phoenix/blobs

- name: Import it into BETA under another id
  phoenix.platform.phoenix_seed:
    state: imported
    src: /srv/seeds/ENTERPRISE_ONBOARDING
    world: ONBOARDING_BETA
    conflict: merge
    blob_dir: /srv/phoenix-beta/blobs

- name: Remove blob files no row references
  phoenix.platform.phoenix_seed:
    state: orphans_removed
    blob_dir: /srv/phoenix-beta/blobs
"""

RETURN = r"""
path:
  description: The seed directory written or read.
  returned: when O(state) is V(exported) or V(imported)
  type: str
tables:
  description:
    - V(exported) gives rows per table.
    - V(imported) gives per table C(rows) in the seed, C(conflicts) (keys that exist already), C(inserted),
      C(updated) and C(deleted).
  returned: when O(state) is V(exported) or V(imported)
  type: dict
conflicts:
  description: Rows per table whose keys exist already (V(imported)).
  returned: when O(state=imported)
  type: dict
blobs:
  description: Blob keys written (V(imported)), number exported (V(exported)), or files removed (V(orphans_removed)).
  returned: success
  type: raw
"""

import importlib.util
from pathlib import Path

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import (
    ALLOW_PROD_OPTIONS,
    LOCK_OPTIONS,
    MAINTAINED_OPTIONS,
    TRANSFORM_OPTIONS,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.format import CONFLICTS

# Only imports validate manifests with pydantic; it is imported where they happen.
HAS_PYDANTIC = importlib.util.find_spec("pydantic") is not None


def _path(module: PhoenixModule, option: str) -> Path:
    return Path(module.params[option])  # required_if makes sure it is set


def _blob_dir(module: PhoenixModule) -> Path | None:
    return Path(module.params["blob_dir"]) if module.params["blob_dir"] else None


def exported(module: PhoenixModule, conn) -> dict:
    from ansible_collections.phoenix.platform.plugins.module_utils._seeds.export import ExportRequest, export_world

    request = ExportRequest(world=module.params["world"], dest=_path(module, "dest"), stage=module.stage,
                            include_blobs=module.params["include_blobs"], blob_dir=_blob_dir(module),
                            blob_columns=tuple(module.params["blob_columns"]), mask=module.params["mask"],
                            allow_unmasked=module.params["allow_unmasked"],
                            where=module.connection_target().describe())
    return export_world(conn, request, module.check_mode)


def imported(module: PhoenixModule, conn) -> dict:
    from ansible_collections.phoenix.platform.plugins.module_utils._seeds.importer import ImportRequest, import_seed

    request = ImportRequest(src=_path(module, "src"), world=module.params["world"],
                            conflict=module.params["conflict"], blob_dir=_blob_dir(module), stage=module.stage,
                            maintained_columns=module.params["maintained_columns"],
                            column_transforms=module.params["column_transforms"],
                            actor=module.actor, allow_prod=module.params["allow_prod"],
                            lock_timeout=module.params["lock_timeout"], where=module.connection_target().describe())
    return import_seed(conn, request, module.check_mode)


def orphans_removed(module: PhoenixModule, conn) -> dict:
    from ansible_collections.phoenix.platform.plugins.module_utils._seeds.blobs import orphans
    from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import load
    from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed

    blob_dir = _path(module, "blob_dir")
    found = orphans(conn, load(conn), blob_dir, module.params["blob_columns"])
    if found:
        require_prod_allowed(module.stage, module.params["allow_prod"], "removing blob files")
    if not module.check_mode:
        for name in found:
            (blob_dir / name).unlink()
    return {"changed": bool(found), "blobs": found, "warnings": []}


def run(module: PhoenixModule) -> dict:
    if module.params["state"] == "imported" and not HAS_PYDANTIC:
        module.fail_json(msg=missing_required_lib("pydantic"))
    action = STATES[module.params["state"]]
    with module.fenced_connection(writes=module.params["state"] != "exported") as conn:
        return action(module, conn)


STATES = {"exported": exported, "imported": imported, "orphans_removed": orphans_removed}


def main() -> None:
    module = PhoenixModule(
        state_paths=("dest", "blob_dir"),
        argument_spec={
            "state": {"type": "str", "choices": list(STATES), "required": True},
            "world": {"type": "str"},
            "dest": {"type": "path"},
            "src": {"type": "path"},
            "include_blobs": {"type": "bool", "default": True},
            "conflict": {"type": "str", "choices": list(CONFLICTS), "default": "skip"},
            **MAINTAINED_OPTIONS,
            "blob_dir": {"type": "path", "fallback": (env_fallback, ["PHOENIX_BLOB_DIR"])},
            "blob_columns": {"type": "list", "elements": "str", "default": ["A_Image.url"]},
            **ALLOW_PROD_OPTIONS,
            "mask": {"type": "dict"},
            "allow_unmasked": {"type": "bool", "default": False},
            **LOCK_OPTIONS,
            **TRANSFORM_OPTIONS,
        },
        required_if=[("state", "exported", ("world", "dest")), ("state", "imported", ("src",)),
                     ("state", "orphans_removed", ("blob_dir",))],
    )
    module.run(run)


if __name__ == "__main__":
    main()
