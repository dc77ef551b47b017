# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Application users of the reference schema: "User" rows with a bcrypt password and a type.

An email identifies one user per world (NULL world = a production user), compared
case-insensitively. Neither the password nor its hash ever leaves this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import jsonable, read_meta, validate_world_id
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import UPDATES, require_identified
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import glob_to_like
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import insert_values, update_values
from ansible_collections.phoenix.platform.plugins.module_utils._users import cascade

try:
    from psycopg import sql
    from psycopg.rows import dict_row
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# No quotes, brackets or separators: a list or a pasted "Name <a@b>" given as an email is a mistake.
EMAIL = re.compile(r"^[^@\s,;'\"\[\]<>()]+@[^@\s,;'\"\[\]<>()]+\.[^@\s.,;'\"\[\]<>()]+$")
EMAIL_MAX = 64  # "User".email is varchar(64)
ROLES = ("user", "admin")
PASSWORD_UPDATES = ("always", "on_create")  # on_create: an existing user keeps the password
BCRYPT_ROUNDS = 10  # what the application's bcrypt uses by default
USER_TABLE = ("public", "User")
PUBLIC_COLUMNS = 'id, email, {name} AS name, type, world_id, "createdAt", password IS NOT NULL AS has_password'
USER_COLUMNS = {"email", "type", "password", "world_id"}  # name is optional: the original application has none


@dataclass
class UserRequest:
    email: str
    state: str
    stage: str
    actor: str
    name: str | None = None
    role: str | None = None
    password: str | None = None
    update_password: str = "always"
    world: str | None = None
    cascade: bool = False
    create: bool = True
    allow_prod: bool = False
    lock_timeout: int = 60
    where: str = ""


def validate_email(email: str) -> None:
    if not EMAIL.match(email or "") or len(email) > EMAIL_MAX:
        raise PhoenixError("email %r is not a valid address of at most %d characters" % (email, EMAIL_MAX))


def public_user(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """What may be shown of a user: never the password or its hash."""
    if row is None:
        return None
    return {"id": str(row["id"]) if row["id"] else None, "email": row["email"], "name": row["name"], "role": row["type"],
            "world": row["world_id"], "createdAt": jsonable(row["createdAt"]), "has_password": row["has_password"]}


def require_user_table(conn, where: str) -> catalog_mod.Catalog:
    catalog = catalog_mod.load(conn)
    table = catalog.all_tables.get(USER_TABLE)
    if table is None or not USER_COLUMNS <= set(table.types):
        raise PhoenixError('%s has no application "User" table (email, type, password, world_id; name optional): '
                           "run phoenix_schema with app_schema=reference" % where)
    return catalog


def public_columns(catalog: catalog_mod.Catalog):
    """The SELECT list of what may be shown of a user; name is NULL where the table has none."""
    has_name = "name" in catalog.all_tables[USER_TABLE].types
    return sql.SQL(PUBLIC_COLUMNS).format(name=sql.SQL("name" if has_name else "NULL::text"))


def find_user(conn, catalog: catalog_mod.Catalog, email: str, world: str | None,
              lock: bool = False) -> dict[str, Any] | None:
    query = sql.SQL('SELECT {}, password FROM "User" '
                    "WHERE lower(email) = lower(%s) AND world_id IS NOT DISTINCT FROM %s").format(public_columns(catalog))
    if lock:
        query += sql.SQL(" FOR UPDATE")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, [email, world]).fetchone()


def hash_password(password: str) -> str:
    import bcrypt

    encoded = password.encode()
    if len(encoded) > 72:
        raise PhoenixError("password is longer than the 72 bytes bcrypt can use")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()


def password_matches(password: str, stored: str | None) -> bool:
    import bcrypt

    if not stored:
        return False
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:  # not a bcrypt hash
        return False


def _visible(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The diffable state of a user: no id or timestamps, and only whether a password is set."""
    user = public_user(row)
    return None if user is None else {k: user[k] for k in ("email", "name", "role", "world", "has_password")}


def ensure_user(conn, request: UserRequest, check_mode: bool) -> dict[str, Any]:
    validate_email(request.email)
    if request.world is not None:
        validate_world_id(request.world, "world")
    with conn.transaction():
        acquire_transaction_lock(conn, "user:%s:%s" % (request.world or "", request.email.lower()),
                                 request.lock_timeout)
        catalog = require_user_table(conn, request.where)
        if request.world is not None and read_meta(conn, request.world) is None:
            raise PhoenixError("world %s does not exist on %s" % (request.world, request.where))
        current = find_user(conn, catalog, request.email, request.world, lock=True)
        if request.state == "absent":
            return _absent(conn, catalog, request, current, check_mode)
        if request.name is not None and "name" not in catalog.all_tables[USER_TABLE].types:
            raise PhoenixError('the "User" table of %s has no name column: leave name unset' % request.where)
        return _present(conn, catalog, request, current, check_mode)


def _guard(request: UserRequest, what: str) -> None:
    if request.world is not None:  # users inside worlds are test data: the PROD guard applies
        require_prod_allowed(request.stage, request.allow_prod, "%s in world %s" % (what, request.world))


def _present(conn, catalog, request: UserRequest, current, check_mode: bool) -> dict[str, Any]:
    if current is None and not request.create:
        raise PhoenixError("user %s does not exist%s on %s (create=false)" % (
            request.email, " in world %s" % request.world if request.world else "", request.where))
    if request.role is not None and request.role not in ROLES:
        raise PhoenixError("role must be user or admin, got %r" % request.role)
    changes: dict[str, Any] = {}
    if current is None:
        changes = {"email": request.email, "type": request.role or "user"}
        if request.name is not None:
            changes["name"] = request.name
        if request.password is not None:
            changes["password"] = None  # hashed below, only when writing
    else:
        if request.name is not None and request.name != current["name"]:
            changes["name"] = request.name
        if request.role is not None and request.role != current["type"]:
            changes["type"] = request.role
        if (request.password is not None and request.update_password == "always"
                and not password_matches(request.password, current["password"])):
            changes["password"] = None
    if changes:
        _guard(request, "creating or changing users" if current is None else "changing users")
        if current is not None:
            require_identified(conn, [catalog.all_tables[USER_TABLE]], "changing a user", UPDATES)
    after = dict(current or {"id": None, "name": None, "world_id": request.world, "createdAt": None, "has_password": False},
                 **{k: v for k, v in changes.items() if k != "password"})
    if "password" in changes:
        after["has_password"] = True
    if changes and not check_mode:
        if "password" in changes:
            changes["password"] = hash_password(request.password)
        if current is None:
            row = insert_values(conn, sql.Identifier("User"), dict(changes, world_id=request.world),
                                returning=("id", "createdAt"))
            after.update(id=row[0], createdAt=row[1])
        else:
            update_values(conn, sql.Identifier("User"), changes, "id", current["id"])
        record(conn, "user.present", request.stage, request.actor,
               {"email": request.email, "world": request.world, "created": current is None,
                "changed": sorted("role" if c == "type" else c for c in changes)})
    return {"changed": bool(changes), "user": public_user(after) if after.get("email") else None,
            "rows_removed": {}, "diff": {"before": _visible(current), "after": _visible(after)}}


def _absent(conn, catalog, request: UserRequest, current, check_mode: bool) -> dict[str, Any]:
    if current is None:
        return {"changed": False, "user": None, "rows_removed": {}, "diff": {"before": None, "after": None}}
    _guard(request, "deleting users")
    user_table = catalog.all_tables[USER_TABLE]
    params = {"user_id": current["id"]}
    owned = cascade.dependants(catalog, user_table,
                               lambda alias: sql.SQL("{}.id = %(user_id)s").format(sql.Identifier(alias)))
    counts = {table.label: n for table, predicate in owned if (n := cascade.count(conn, table, predicate, params))}
    if counts and not request.cascade:
        raise PhoenixError("user %s still owns rows (%s); set cascade=true to delete them with the user"
                           % (request.email, ", ".join("%s: %d" % item for item in sorted(counts.items()))),
                           owned_rows=counts)
    require_identified(conn, [user_table] + [table for table, predicate in owned], "deleting a user")
    if not check_mode:
        for table, predicate in reversed(owned):
            cascade.delete(conn, table, predicate, params)
        conn.execute(sql.SQL('DELETE FROM "User" WHERE id = %s'), [current["id"]])
        record(conn, "user.absent", request.stage, request.actor,
               {"email": request.email, "world": request.world, "rows_removed": counts})
    removed = dict(counts, User=1)
    return {"changed": True, "user": None, "rows_removed": removed,
            "diff": {"before": _visible(current), "after": None}}


def list_users(conn, role: str | None, world: str | None, email: str | None, user_id: str | None,
               where: str) -> list[dict[str, Any]]:
    """Users matching the filters; ``world='none'`` means production users (no world)."""
    catalog = require_user_table(conn, where)
    conditions = [sql.SQL("true")]
    params: dict[str, Any] = {}
    if role:
        conditions.append(sql.SQL("type = %(role)s"))
        params["role"] = role
    if world == "none":
        conditions.append(sql.SQL("world_id IS NULL"))
    elif world:
        conditions.append(sql.SQL("world_id = %(world)s"))
        params["world"] = world
    if email:
        conditions.append(sql.SQL("email ILIKE %(email)s"))
        params["email"] = glob_to_like(email)
    if user_id:
        conditions.append(sql.SQL("id::text = %(id)s"))
        params["id"] = user_id
    query = sql.SQL('SELECT {} FROM "User" WHERE {} ORDER BY world_id NULLS FIRST, lower(email)').format(
        public_columns(catalog), sql.SQL(" AND ").join(conditions))
    with conn.cursor(row_factory=dict_row) as cur:
        return [public_user(row) for row in cur.execute(query, params)]
