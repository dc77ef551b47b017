# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a database holds besides its contents: tablespace, encoding and locale, connection limit, privileges, comment and
settings (``ALTER DATABASE ... SET``, ``ALTER ROLE ... IN DATABASE ... SET``). A dump carries none of them, so a
swap restore reads them from the old database and gives them to the new one: the application finds the
``search_path``, grants and collation it had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# Settings whose value is a list of quoted elements (the server's GUC_LIST_QUOTE); the rest are one value each.
LIST_SETTINGS = frozenset({"search_path", "temp_tablespaces", "session_preload_libraries",
                           "local_preload_libraries", "shared_preload_libraries", "unix_socket_directories"})
LIST_ELEMENT = re.compile(r'\s*(?:"(?P<quoted>(?:[^"]|"")*)"|(?P<bare>[^\s,"]*))\s*(?P<comma>,|$)')
DEFAULT_TABLESPACE = "pg_default"
LOCALE_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}


@dataclass(frozen=True)
class Grant:
    grantee: str | None  # None: PUBLIC
    privilege: str  # a keyword, as aclexplode() names it: CONNECT, CREATE or TEMPORARY
    grantable: bool


@dataclass(frozen=True)
class Setting:
    role: str | None  # None: every role
    name: str
    value: str  # as the catalog stores it


@dataclass(frozen=True)
class DatabaseProperties:
    encoding: str
    tablespace: str
    catalog: dict[str, Any]  # the pg_database row, keyed by column (they differ between server versions)
    grants: list[Grant] | None = None  # None: the default privileges
    comment: str | None = None
    settings: list[Setting] = field(default_factory=list)


def read_properties(admin, database: str) -> DatabaseProperties:
    encoding, tablespace, catalog, comment, explicit_privileges = admin.execute(sql.SQL(
        "SELECT pg_encoding_to_char(d.encoding), t.spcname, to_jsonb(d) - 'datacl', "
        "shobj_description(d.oid, 'pg_database'), d.datacl IS NOT NULL "
        "FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE datname = %s"), [database]).fetchone()
    grants = None
    if explicit_privileges:
        grants = [Grant(grantee, privilege, grantable) for grantee, privilege, grantable in admin.execute(sql.SQL(
            "SELECT CASE WHEN a.grantee <> 0 THEN pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable "
            "FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s ORDER BY 1 NULLS FIRST, 2"),
            [database])]
    settings = [Setting(role, *entry.split("=", 1)) for role, entries in admin.execute(sql.SQL(
        "SELECT CASE WHEN s.setrole <> 0 THEN pg_get_userbyid(s.setrole) END, s.setconfig "
        "FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s "
        "ORDER BY 1 NULLS FIRST"), [database]) for entry in entries]
    return DatabaseProperties(encoding, tablespace, catalog, grants, comment, settings)


def create_options(properties: DatabaseProperties) -> sql.Composable:
    """``CREATE DATABASE`` options for the old database's tablespace (the disk it was given), encoding and locale
    (they decide sort orders and which characters fit)."""
    catalog = properties.catalog
    options = [sql.SQL("ENCODING {}").format(sql.Literal(properties.encoding)),
               sql.SQL("LC_COLLATE {}").format(sql.Literal(catalog["datcollate"])),
               sql.SQL("LC_CTYPE {}").format(sql.Literal(catalog["datctype"]))]
    if properties.tablespace != DEFAULT_TABLESPACE:  # naming the default needs a CREATE right on it nobody has
        options.insert(0, sql.SQL("TABLESPACE {}").format(sql.Identifier(properties.tablespace)))
    provider = LOCALE_PROVIDERS.get(catalog.get("datlocprovider") or "")
    if provider:  # PostgreSQL 15 and later
        options.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(provider)))
        locale = catalog.get("datlocale") or catalog.get("daticulocale")  # named datlocale since 17
        if provider == "icu":
            options.append(sql.SQL("ICU_LOCALE {}").format(sql.Literal(locale)))
            if catalog.get("daticurules"):
                options.append(sql.SQL("ICU_RULES {}").format(sql.Literal(catalog["daticurules"])))
        elif provider == "builtin":
            options.append(sql.SQL("BUILTIN_LOCALE {}").format(sql.Literal(locale)))
    return sql.SQL(" ").join(options)


def access_statements(database: str, owner: str, properties: DatabaseProperties) -> list[sql.Composable]:
    """Privileges; harmless to the restore, so given right after the creation."""
    name = sql.Identifier(database)
    statements = []
    if properties.grants is not None:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        statements.extend(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            sql.SQL(grant.privilege), name,
            sql.Identifier(grant.grantee) if grant.grantee else sql.SQL("PUBLIC"),
            sql.SQL(" WITH GRANT OPTION" if grant.grantable else ""))
            for grant in properties.grants if grant.grantee != owner)
    return statements


def comment_statements(database: str, properties: DatabaseProperties) -> list[sql.Composable]:
    """The old database's comment, or none, for the database now named ``database``. Given in the transaction that
    swaps the names: until then the new database carries the comment that marks it as a scratch database (see
    ``scratch.create_scratch``)."""
    return [sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(properties.comment))]


def limit_statements(database: str, properties: DatabaseProperties) -> list[sql.Composable]:
    """The old database's connection limit for the database now named ``database``. Given in the transaction that
    swaps the names: a parallel restore may need more sessions than the application is allowed (a limit binds a
    role that is not a superuser)."""
    if properties.catalog["datconnlimit"] == -1:
        return []
    return [sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(
        sql.Identifier(database), sql.Literal(properties.catalog["datconnlimit"]))]


def setting_statements(database: str, properties: DatabaseProperties) -> list[sql.Composable]:
    """The old database's settings for the database now named ``database``. Given in the transaction that swaps
    the names: a setting like ``default_transaction_read_only`` must not reach the restore."""
    statements = []
    for setting in properties.settings:
        target = sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database)) if setting.role is None else \
            sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(setting.role), sql.Identifier(database))
        try:
            values = split_list(setting.value) if setting.name.lower() in LIST_SETTINGS else [setting.value]
        except ValueError:
            raise PhoenixError("database %s has the setting %s = %r, which is not a list of names; set it again "
                               "with ALTER DATABASE ... SET, then restore" % (database, setting.name, setting.value)
                               ) from None
        statements.append(sql.SQL("{} SET {} TO {}").format(
            target, sql.Identifier(setting.name), sql.SQL(", ").join(sql.Literal(value) for value in values)))
    return statements


def split_list(value: str) -> list[str]:
    """A list setting as the catalog stores it (``"$user", public``) into its elements (``$user``, ``public``)."""
    elements, position = [], 0
    while True:
        element = LIST_ELEMENT.match(value, position)
        if element is None:
            raise ValueError(value)
        quoted, bare = element.group("quoted", "bare")
        elements.append(quoted.replace('""', '"') if quoted is not None else bare)
        position = element.end()
        if position >= len(value) and not element.group("comma"):
            return elements
