# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The connection option group (CONNECTION_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  db_url:
    description:
      - libpq connection URI or conninfo string, for example C(postgresql://phoenix@db.example.com:5432/phoenix_beta).
      - When neither O(db_url) nor any C(login_*) option is given, the environment variable E(PHOENIX_DB_URL)
        is used, then E(DATABASE_URL).
      - What the options leave out, libpq takes from its own environment variables (E(PGHOST), E(PGPORT),
        E(PGUSER), E(PGPASSWORD), E(PGDATABASE), a service file); the programs a module runs (C(pg_dump),
        C(pg_restore)) are given the same connection.
      - Mutually exclusive with the C(login_*) options. Treated as a secret.
      - Like C(pg_dump)'s, the module's sessions lift C(statement_timeout), C(idle_in_transaction_session_timeout),
        C(idle_session_timeout) and C(transaction_timeout) for themselves, whatever the database or role sets for
        the application. They read dates with C(DateStyle=ISO) and text in UTF-8 (the server converts it from the
        database's encoding), which changes no value, only its form; C(TimeZone) stays the database's.
      - Row security is off in the module's sessions, as in C(pg_dump)'s, so a run never works on part of a world
        or a table. Where a row-level security policy would hide rows from the role it connects as, the server
        refuses the query and nothing is written. Such a role needs C(BYPASSRLS).
      - These settings apply from the session's start (libpq C(options), added after any the connection gives),
        but for C(idle_session_timeout) and C(transaction_timeout), which older servers do not know. Through a
        pool that refuses startup options (PgBouncer without C(options) in C(ignore_startup_parameters)), the
        session's first statement sets them all.
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
notes:
  - All modules of this collection are in the action group C(phoenix.platform.phoenix), so a play can set
    the connection once with C(module_defaults).
requirements:
  - psycopg >= 3.1
"""
