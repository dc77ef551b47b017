# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking personal data on its way out of PROD, applied in the source query itself.

Each masked column gets a transformer: ``null``, ``constant`` (with a value), ``hash_email``
(deterministic ``user_<hash>@example.invalid``), ``fake_name`` (deterministic ``Person <hash>``)
or ``keep``. Deterministic transformers keep a re-run idempotent.
"""

from __future__ import annotations

from typing import Any, Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

TRANSFORMERS = ("null", "constant", "hash_email", "fake_name", "keep")

# The reference schema's personal data.
DEFAULT_PROFILE: dict[str, Any] = {
    "User.email": "hash_email",
    "User.name": "fake_name",
    "User.password": "null",
    "A_Person.email": "hash_email",
    "A_Person.fullName": "fake_name",
    "A_Person.photoUrl": "null",
}


def parse(mask: dict[str, Any]) -> dict[tuple[str, str], tuple[str, Any]]:
    """``{"Table.column": "hash_email" | {"constant": value}}`` → ``{(table, column): (transformer, value)}``."""
    rules = {}
    for name, spec in mask.items():
        table, _dot, column = name.rpartition(".")
        if not table or not column:
            raise PhoenixError("mask key %r must look like Table.column" % name)
        if isinstance(spec, dict):
            if set(spec) != {"constant"}:
                raise PhoenixError("mask %s: a dict rule must be {constant: value}" % name)
            rules[(table, column)] = ("constant", spec["constant"])
        elif spec in TRANSFORMERS and spec != "constant":
            rules[(table, column)] = (spec, None)
        else:
            raise PhoenixError("mask %s: unknown transformer %r; use one of %s, or {constant: value}"
                               % (name, spec, ", ".join(t for t in TRANSFORMERS if t != "constant")))
    return rules


def rules_for(leaving_prod: bool, mask: dict[str, Any] | None, allow_unmasked: bool) -> dict[tuple[str, str], tuple[str, Any]]:
    """The rules for data on its way somewhere: the default profile applies when it leaves PROD, and
    keeping any of its columns unmasked needs ``allow_unmasked``."""
    rules = parse(dict(DEFAULT_PROFILE if leaving_prod else {}, **(mask or {})))
    if leaving_prod and not allow_unmasked:
        kept = sorted("%s.%s" % key for key, rule in rules.items()
                      if rule[0] == "keep" and "%s.%s" % key in DEFAULT_PROFILE)
        if kept:
            raise PhoenixError("personal data would leave PROD unmasked (%s); set allow_unmasked=true if that is "
                               "really intended" % ", ".join(kept))
    if leaving_prod and allow_unmasked:
        rules = {k: v for k, v in rules.items() if (mask or {}).get("%s.%s" % k) is not None}
    return rules


def check_columns(rules: dict[tuple[str, str], tuple[str, Any]], mask: dict[str, Any] | None,
                  tables: Iterable[Any]) -> None:
    """Rules the user gave must name existing ``Table.column``s of ``tables`` (catalog tables: a typo would
    leave data unmasked); default-profile entries for tables this schema lacks are skipped."""
    columns = {table.label: table.types for table in tables}
    unknown = sorted("%s.%s" % key for key in rules if "%s.%s" % key in (mask or {})
                     and key[1] not in columns.get(key[0], {}))
    if unknown:
        raise PhoenixError("mask names columns that do not exist: %s; use Table.column as the tables are labelled "
                           "(e.g. User.email, shop.customers.email)" % ", ".join(unknown))


def expression(rule: tuple[str, Any], column_sql):
    """SQL that masks ``column_sql`` according to ``rule``."""
    transformer, value = rule
    if transformer == "keep":
        return column_sql
    if transformer == "null":
        return sql.SQL("NULL")
    if transformer == "constant":
        return sql.Literal(value)
    masked = {
        "hash_email": "CASE WHEN {c} IS NULL THEN NULL ELSE 'user_' || left(md5(lower({c}::text)), 12) "
                      "|| '@example.invalid' END",
        "fake_name": "CASE WHEN {c} IS NULL THEN NULL ELSE 'Person ' || upper(left(md5({c}::text), 6)) END",
    }[transformer]
    return sql.SQL(masked).format(c=column_sql)
