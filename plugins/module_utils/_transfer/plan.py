# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a transfer moves, decided from the request and the catalogs alone (no SQL here).

The request, the world renames, the masking rules, the tables (the selected groups and the
parents their rows reference, parents first) and the schema differences that stop a transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core import masking
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import validate_world_id
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_META, Table

# Entity groups of the reference schema (a data-model setting: option `groups` replaces it).
DEFAULT_GROUPS = {
    "worlds": [WORLD_META],
    "users": ["User"],
    "artifacts": ["Artifact", "A_Text", "A_Image", "A_Person", "A_Site", "A_Address", "A_FaqItem", "A_Link",
                  "A_SetDefinition", "A_SetItems", "Suggestion"],
    "chats": ["Chat", "Message_v2"],
}
CONFLICTS = ("update", "skip", "fail")
KEY_CONFLICTS = ("fail", "rekey")


@dataclass
class TransferRequest:
    source_stage: str
    target_stage: str
    actor: str
    worlds: list[str] | None = None
    include: list[str] | None = None  # None: the whole world, every member table
    groups: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    production_data: bool = False
    rename: dict[str, str] = field(default_factory=dict)
    suffix: str | None = None
    conflict: str = "update"
    key_conflict: str = "fail"
    delete_missing: bool = False
    maintained_columns: list[str] | None = None  # table.column the target maintains: never compared or updated
    column_transforms: dict[str, str] | None = None  # table.column -> per-world value of renamed worlds' rows
    mask: dict[str, Any] | None = None
    allow_unmasked: bool = False
    allow_prod: bool = False
    lock_timeout: int = 60
    diff: bool = False
    where: str = ""


def world_map(request: TransferRequest, worlds: list[str]) -> dict[str, str]:
    mapping = {}
    for world in worlds:
        target = request.rename.get(world) or (world + request.suffix if request.suffix else world)
        validate_world_id(target, "target world id")
        mapping[world] = target
    return mapping


def rekeyed_targets(request: TransferRequest, mapping: dict[str, str]) -> list[str]:
    """The target worlds whose rows get keys of their own: the renamed ones, or every one with key_conflict=rekey."""
    return sorted(set(mapping.values()) if request.key_conflict == "rekey"
                  else {target for source, target in mapping.items() if source != target})


def mask_rules(request: TransferRequest) -> dict[tuple[str, str], tuple[str, Any]]:
    leaving_prod = request.source_stage == "PROD" and request.target_stage != "PROD"
    return masking.rules_for(leaving_prod, request.mask, request.allow_unmasked)


def selected_tables(source_catalog, request: TransferRequest) -> list[Table]:
    """The tables a transfer moves, parents first: the whole world, or the groups ``include`` names plus the parents
    their rows reference."""
    by_label = dict(source_catalog.by_label)
    if source_catalog.registry is not None:
        by_label[WORLD_META] = source_catalog.registry
    if request.include is None:
        return catalog_mod.topological(by_label.values())
    unknown = sorted(set(request.include) - set(request.groups))
    if unknown:
        raise PhoenixError("include names unknown groups %s; known: %s" % (", ".join(unknown), ", ".join(request.groups)))
    wanted = {label for group in request.include for label in request.groups[group]}
    missing = sorted(label for label in wanted if label not in by_label)
    if missing:
        raise PhoenixError("the source has no world table(s) %s" % ", ".join(missing))
    selected = {by_label[label].key for label in wanted}
    members = {m.key for m in source_catalog.members}
    grew = True
    while grew:  # the FK closure: parents the selected rows reference come along
        grew = False
        for key in list(selected):
            for fk in source_catalog.all_tables[key].foreign_keys:
                if fk.target not in selected and fk.target in members:
                    selected.add(fk.target)
                    grew = True
    ordered = catalog_mod.topological(source_catalog.all_tables[key] for key in selected)
    return ordered


def left_out(source_catalog, tables: list[Table]) -> list[str]:
    """Member tables of the world a group selection does not move: reported, never dropped silently."""
    chosen = {table.key for table in tables}
    return sorted(member.label for member in source_catalog.members if member.key not in chosen)


def schema_differences(source_catalog, target_catalog, tables: list[Table]) -> list[str]:
    problems = []
    for table in tables:
        other = target_catalog.all_tables.get(table.key)
        if other is None:
            problems.append("%s: missing in the target" % table.label)
            continue
        for column in sorted(set(table.types) | set(other.types)):
            mine, theirs = table.types.get(column), other.types.get(column)
            if mine is None:
                problems.append("%s.%s: missing in the source" % (table.label, column))
            elif theirs is None:
                problems.append("%s.%s: missing in the target" % (table.label, column))
            elif mine != theirs:
                problems.append("%s.%s: %s in the source, %s in the target" % (table.label, column, mine, theirs))
        if table.primary_key != other.primary_key:
            problems.append("%s: primary key (%s) in the source, (%s) in the target"
                            % (table.label, ", ".join(table.primary_key), ", ".join(other.primary_key)))
    return problems
