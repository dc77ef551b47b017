# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned migrations: Phoenix's own tables and the reference application schema.

Migrations are static DDL (no interpolated values) applied in version order inside
one transaction together with their bookkeeping, so a killed run applies all or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


CORE = "core"  # always applied: the phoenix schema and "WorldMeta"
REFERENCE = "reference"  # the WelcomeCraft-style reference application tables
APP_SCHEMAS = ("reference", "none")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    component: str
    statements: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.name, "component": self.component}


_PHOENIX_TABLES = (
    "CREATE SCHEMA IF NOT EXISTS phoenix",
    """CREATE TABLE phoenix.migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        component text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL
    )""",
    # The stage fence: exactly one row, written by the first schema run.
    """CREATE TABLE phoenix.environment (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        stage text NOT NULL CHECK (stage IN ('LOCAL', 'BETA', 'PROD')),
        app_schema text NOT NULL CHECK (app_schema IN ('reference', 'none')),
        registered_at timestamptz NOT NULL DEFAULT now(),
        registered_by text NOT NULL
    )""",
    """CREATE TABLE phoenix.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        operation text NOT NULL,
        stage text NOT NULL,
        actor text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX audit_log_at_idx ON phoenix.audit_log (at)",
    """CREATE TABLE phoenix.health_history (
        id bigserial PRIMARY KEY,
        checked_at timestamptz NOT NULL DEFAULT now(),
        stage text NOT NULL,
        status text NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy')),
        response_ms double precision,
        checks jsonb NOT NULL
    )""",
    "CREATE INDEX health_history_checked_at_idx ON phoenix.health_history (checked_at)",
)

_WORLD_META = (
    """CREATE TABLE "WorldMeta" (
        id text PRIMARY KEY CHECK (id ~ '^[A-Z][A-Z0-9_]{0,63}$'),
        name text NOT NULL,
        description text,
        environment text NOT NULL CHECK (environment IN ('LOCAL', 'BETA', 'PROD')),
        category text,
        "isActive" boolean NOT NULL DEFAULT true,
        "isTemplate" boolean NOT NULL DEFAULT false,
        "autoCleanup" boolean NOT NULL DEFAULT true,
        "cleanupAfterHours" integer NOT NULL DEFAULT 24 CHECK ("cleanupAfterHours" > 0),
        "isolationLevel" text NOT NULL DEFAULT 'FULL'
            CHECK ("isolationLevel" IN ('FULL', 'PARTIAL', 'NONE')),
        tags text[] NOT NULL DEFAULT '{}',
        dependencies text[] NOT NULL DEFAULT '{}',
        settings jsonb NOT NULL DEFAULT '{}',
        version text NOT NULL DEFAULT '1.0.0',
        "usageCount" integer NOT NULL DEFAULT 0,
        "lastUsedAt" timestamptz,
        "createdBy" text,
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        "updatedAt" timestamptz NOT NULL DEFAULT now()
    )""",
    'CREATE INDEX "WorldMeta_category_idx" ON "WorldMeta" (category)',
)

_REFERENCE_APP = (
    """CREATE TABLE "User" (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        email varchar(64) NOT NULL,
        name text,
        password varchar(64),
        role varchar NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
        world_id text,
        "createdAt" timestamptz NOT NULL DEFAULT now()
    )""",
    'CREATE UNIQUE INDEX "User_email_world_idx" ON "User" (email, coalesce(world_id, \'\'))',
    """CREATE TABLE "Chat" (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        title text NOT NULL,
        "userId" uuid NOT NULL REFERENCES "User" (id),
        visibility varchar NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
        world_id text
    )""",
    """CREATE TABLE "Message_v2" (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "chatId" uuid NOT NULL REFERENCES "Chat" (id),
        role varchar NOT NULL,
        parts json NOT NULL,
        attachments json NOT NULL DEFAULT '[]',
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        world_id text
    )""",
    """CREATE TABLE "Artifact" (
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        title text NOT NULL,
        summary text,
        kind varchar NOT NULL DEFAULT 'text'
            CHECK (kind IN ('text', 'code', 'image', 'sheet', 'person', 'set', 'site')),
        "userId" uuid NOT NULL REFERENCES "User" (id),
        "authorId" uuid REFERENCES "User" (id),
        "deletedAt" timestamptz,
        world_id text,
        PRIMARY KEY (id, "createdAt")
    )""",
    """CREATE TABLE "Suggestion" (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "documentId" uuid NOT NULL,
        "documentCreatedAt" timestamptz NOT NULL,
        "originalText" text NOT NULL,
        "suggestedText" text NOT NULL,
        description text,
        "isResolved" boolean NOT NULL DEFAULT false,
        "userId" uuid NOT NULL REFERENCES "User" (id),
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        world_id text,
        FOREIGN KEY ("documentId", "documentCreatedAt") REFERENCES "Artifact" (id, "createdAt")
    )""",
    """CREATE TABLE "A_Text" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        content text NOT NULL DEFAULT '',
        "wordCount" integer,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt")
            ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_Image" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        url text NOT NULL,
        "altText" text,
        width integer,
        height integer,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt")
            ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_Person" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        "fullName" text NOT NULL,
        position text,
        department text,
        email text,
        "photoUrl" text,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt")
            ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_SetItems" (
        "setId" uuid NOT NULL,
        "setCreatedAt" timestamptz NOT NULL,
        "itemId" uuid NOT NULL,
        "itemCreatedAt" timestamptz NOT NULL,
        "order" integer NOT NULL DEFAULT 0,
        PRIMARY KEY ("setId", "setCreatedAt", "itemId", "itemCreatedAt"),
        FOREIGN KEY ("setId", "setCreatedAt") REFERENCES "Artifact" (id, "createdAt")
            ON DELETE CASCADE,
        FOREIGN KEY ("itemId", "itemCreatedAt") REFERENCES "Artifact" (id, "createdAt")
            ON DELETE CASCADE
    )""",
    'CREATE INDEX "User_world_id_idx" ON "User" (world_id)',
    'CREATE INDEX "Chat_world_id_idx" ON "Chat" (world_id)',
    'CREATE INDEX "Message_v2_world_id_idx" ON "Message_v2" (world_id)',
    'CREATE INDEX "Artifact_world_id_idx" ON "Artifact" (world_id)',
    'CREATE INDEX "Suggestion_world_id_idx" ON "Suggestion" (world_id)',
)

# Foreign-key columns get indexes so that deleting parents (world cleanup) does not scan
# every child table once per deleted row.
_REFERENCE_FK_INDEXES = (
    'CREATE INDEX "Chat_userId_idx" ON "Chat" ("userId")',
    'CREATE INDEX "Message_v2_chatId_idx" ON "Message_v2" ("chatId")',
    'CREATE INDEX "Artifact_userId_idx" ON "Artifact" ("userId")',
    'CREATE INDEX "Artifact_authorId_idx" ON "Artifact" ("authorId")',
    'CREATE INDEX "Suggestion_userId_idx" ON "Suggestion" ("userId")',
    'CREATE INDEX "Suggestion_document_idx" ON "Suggestion" ("documentId", "documentCreatedAt")',
    'CREATE INDEX "A_SetItems_item_idx" ON "A_SetItems" ("itemId", "itemCreatedAt")',
)

# The application's "User" keeps its role in a column named type (user | admin), and an
# email identifies one user per world whatever its case.
_REFERENCE_USER_TYPE = (
    'ALTER TABLE "User" RENAME COLUMN role TO type',
    'ALTER TABLE "User" RENAME CONSTRAINT "User_role_check" TO "User_type_check"',
    'DROP INDEX "User_email_world_idx"',
    'CREATE UNIQUE INDEX "User_email_world_idx" ON "User" (lower(email), coalesce(world_id, \'\'))',
)

# Integer keys of rows copied under another world id: the new key each source key got, per table and world,
# so a repeated copy finds its rows. Deleted with the world.
_KEY_MAP = (
    """CREATE TABLE phoenix.key_map (
        table_name text NOT NULL,
        world text NOT NULL,
        old_key text NOT NULL,
        new_key text NOT NULL,
        PRIMARY KEY (table_name, world, old_key)
    )""",
    "CREATE INDEX key_map_world_idx ON phoenix.key_map (world)",
)

# The key map as one row per copy (table, world, old keys, new keys as arrays): a copy of a million rows writes
# two arrays, not a million indexed rows. phoenix.key_map stays readable as a view of one row per key.
_KEY_MAP_BATCHES = (
    """CREATE TABLE phoenix.key_map_batch (
        table_name text NOT NULL,
        world text NOT NULL,
        old_keys bigint[] NOT NULL,
        new_keys bigint[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (cardinality(old_keys) = cardinality(new_keys))
    )""",
    "CREATE INDEX key_map_batch_world_idx ON phoenix.key_map_batch (world, table_name)",
    # Key arrays hardly compress, and compressing megabytes of them costs more than storing them.
    "ALTER TABLE phoenix.key_map_batch ALTER old_keys SET STORAGE EXTERNAL, ALTER new_keys SET STORAGE EXTERNAL",
    """INSERT INTO phoenix.key_map_batch (table_name, world, old_keys, new_keys)
        SELECT table_name, world, array_agg(old_key::bigint ORDER BY old_key::bigint),
               array_agg(new_key::bigint ORDER BY old_key::bigint)
        FROM phoenix.key_map GROUP BY table_name, world""",
    "DROP TABLE phoenix.key_map",
    """CREATE VIEW phoenix.key_map AS
        SELECT b.table_name, b.world, k.old_key, k.new_key
        FROM phoenix.key_map_batch b CROSS JOIN LATERAL unnest(b.old_keys, b.new_keys) AS k(old_key, new_key)""",
)

# A key of its own for phoenix.key_map_batch: a database whose tables a publication sends to a change pipeline
# (CREATE PUBLICATION ... FOR ALL TABLES, as CDC tools set up) refuses every DELETE on a table without a primary
# key or replica identity, and removing a world deletes its key map entries.
_KEY_MAP_BATCH_KEY = (
    "ALTER TABLE phoenix.key_map_batch ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
)

WORLD_META_VERSION = 2
# An application that owns "WorldMeta" keeps it: the migration is recorded under this name and creates nothing.
ADOPTED_WORLD_META = Migration(WORLD_META_VERSION, "world_meta_adopted", CORE, ())

# Every artifact kind the application knows, each with its content table (a person's contact details too).
_REFERENCE_CONTENT_TABLES = (
    'ALTER TABLE "Artifact" DROP CONSTRAINT "Artifact_kind_check"',
    """ALTER TABLE "Artifact" ADD CONSTRAINT "Artifact_kind_check" CHECK (kind IN
        ('text', 'code', 'image', 'sheet', 'person', 'set', 'site', 'address', 'faq-item', 'link', 'set-definition'))""",
    'ALTER TABLE "A_Person" ADD COLUMN phone text, ADD COLUMN location text, ADD COLUMN quote text',
    """CREATE TABLE "A_Site" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        "siteDefinition" jsonb NOT NULL,
        theme text,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt") ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_Address" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        "streetAddress" text NOT NULL,
        city text NOT NULL,
        state text,
        "postalCode" text,
        country text NOT NULL,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt") ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_FaqItem" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        question text NOT NULL,
        answer text NOT NULL,
        category text,
        priority integer NOT NULL DEFAULT 0,
        tags jsonb NOT NULL DEFAULT '[]',
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt") ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_Link" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        url text NOT NULL,
        title text NOT NULL,
        description text,
        category text,
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt") ON DELETE CASCADE
    )""",
    """CREATE TABLE "A_SetDefinition" (
        "artifactId" uuid NOT NULL,
        "createdAt" timestamptz NOT NULL,
        definition jsonb NOT NULL,
        "validationRules" jsonb NOT NULL DEFAULT '{}',
        PRIMARY KEY ("artifactId", "createdAt"),
        FOREIGN KEY ("artifactId", "createdAt") REFERENCES "Artifact" (id, "createdAt") ON DELETE CASCADE
    )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "phoenix_core", CORE, _PHOENIX_TABLES),
    Migration(WORLD_META_VERSION, "world_meta", CORE, _WORLD_META),
    Migration(3, "reference_app", REFERENCE, _REFERENCE_APP),
    Migration(4, "reference_fk_indexes", REFERENCE, _REFERENCE_FK_INDEXES),
    Migration(5, "reference_user_type", REFERENCE, _REFERENCE_USER_TYPE),
    Migration(6, "reference_content_tables", REFERENCE, _REFERENCE_CONTENT_TABLES),
    Migration(7, "key_map", CORE, _KEY_MAP),
    Migration(8, "key_map_batches", CORE, _KEY_MAP_BATCHES),
    Migration(9, "key_map_batch_key", CORE, _KEY_MAP_BATCH_KEY),
)

LATEST_VERSION = MIGRATIONS[-1].version


def wanted(app_schema: str, target_version: int | None = None) -> list[Migration]:
    """The migrations a database with this app_schema should have, up to target_version."""
    return [
        m for m in MIGRATIONS
        if (app_schema == "reference" or m.component == CORE)
        and (target_version is None or m.version <= target_version)
    ]


def pending(applied: set[int], app_schema: str, target_version: int | None = None) -> list[Migration]:
    return [m for m in wanted(app_schema, target_version) if m.version not in applied]


def apply(conn, migration: Migration, actor: str) -> None:
    for statement in migration.statements:
        conn.execute(sql.SQL(statement))  # static DDL shipped with the collection
    conn.execute(
        sql.SQL(
            "INSERT INTO phoenix.migrations (version, name, component, applied_by) "
            "VALUES (%s, %s, %s, %s)"
        ),
        [migration.version, migration.name, migration.component, actor],
    )
