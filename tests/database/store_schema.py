"""A rental store in the style of a Django/Rails application: serial and identity integer keys, a shared
production lookup (films) that world rows reference, and worlds marked on two root tables only."""

from __future__ import annotations

from psycopg import sql

from worlds_fixtures import migrate

STORE_DDL = (
    "CREATE SCHEMA store",
    "CREATE TABLE store.film (film_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text NOT NULL)",
    # A production lookup with text keys that world rows reference: never copied, never re-keyed.
    "CREATE TABLE store.tier (code text PRIMARY KEY, label text NOT NULL)",
    "INSERT INTO store.tier VALUES ('basic', 'Basic'), ('gold', 'Gold')",
    "CREATE TABLE store.staff (staff_id serial PRIMARY KEY, name text NOT NULL, world_id text)",
    "CREATE TABLE store.customer (customer_id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE, "
    "served_by integer REFERENCES store.staff (staff_id), tier text NOT NULL DEFAULT 'basic' "
    "REFERENCES store.tier (code), world_id text, "
    "last_update timestamptz NOT NULL DEFAULT now())",
    # last_update is the database's own business, as ORMs and sample schemas keep it.
    "CREATE FUNCTION store.touch() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN NEW.last_update := clock_timestamp(); RETURN NEW; END $$",
    "CREATE TRIGGER customer_touch BEFORE UPDATE ON store.customer FOR EACH ROW EXECUTE FUNCTION store.touch()",
    # A cycle, as applications have them: staff name a favourite customer, checked at commit.
    "ALTER TABLE store.staff ADD COLUMN favourite_customer integer "
    "REFERENCES store.customer (customer_id) DEFERRABLE INITIALLY IMMEDIATE",
    "CREATE TABLE store.rental (rental_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "customer_id integer NOT NULL REFERENCES store.customer (customer_id), "
    "film_id integer NOT NULL REFERENCES store.film (film_id), rented_at timestamptz NOT NULL)",
    # Payments by year, their foreign keys declared on each partition (as tools that create partitions do).
    "CREATE TABLE store.payment (payment_id serial, rental_id bigint NOT NULL, amount numeric(6, 2) NOT NULL, "
    "paid_at date NOT NULL, PRIMARY KEY (payment_id, paid_at)) PARTITION BY RANGE (paid_at)",
    "CREATE TABLE store.payment_2025 PARTITION OF store.payment FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE store.payment_2026 PARTITION OF store.payment FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "ALTER TABLE store.payment_2025 ADD FOREIGN KEY (rental_id) REFERENCES store.rental (rental_id)",
    "ALTER TABLE store.payment_2026 ADD FOREIGN KEY (rental_id) REFERENCES store.rental (rental_id)",
    # Rental events by kind, the foreign key declared on the partitioned parent.
    "CREATE TABLE store.rental_event (event_id bigserial, rental_id bigint NOT NULL REFERENCES store.rental, "
    "kind text NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (event_id, kind)) PARTITION BY LIST (kind)",
    "CREATE TABLE store.rental_event_out PARTITION OF store.rental_event FOR VALUES IN ('out')",
    "CREATE TABLE store.rental_event_back PARTITION OF store.rental_event FOR VALUES IN ('back')",
    # Notes have no key of their own: a row is its content.
    "CREATE TABLE store.customer_note (customer_id integer NOT NULL REFERENCES store.customer (customer_id), "
    "note text NOT NULL)",
    # Rows of their own the database already has, numbered from 1 like every world's first rows.
    "INSERT INTO store.film (title) VALUES ('Harbour Lights'), ('Night Train'), ('The Long Field')",
)
STORE_TABLES = ("store.staff", "store.customer", "store.customer_note", "store.rental", "store.rental_event",
                "store.payment")

# One world: 2 staff, 3 customers (each served by a staff member), 2 rentals each, a payment per rental.
FILL_WORLD = (
    "INSERT INTO store.staff (name, world_id) SELECT 'Staff ' || i, %(w)s FROM generate_series(1, 2) i",
    "INSERT INTO store.customer (name, email, served_by, world_id) "
    "SELECT 'Customer ' || i, 'c' || i || '@' || lower(%(w)s) || '.example', "
    "(SELECT min(staff_id) FROM store.staff WHERE world_id = %(w)s), %(w)s FROM generate_series(1, 3) i",
    "UPDATE store.staff s SET favourite_customer = (SELECT max(customer_id) FROM store.customer c "
    "WHERE c.world_id = s.world_id) WHERE s.world_id = %(w)s",
    "INSERT INTO store.rental (customer_id, film_id, rented_at) "
    "SELECT c.customer_id, 1 + (c.customer_id + i) %% 3, '2025-05-01'::timestamptz + i * interval '1 day' "
    "FROM store.customer c, generate_series(1, 2) i WHERE c.world_id = %(w)s",
    "INSERT INTO store.rental_event (rental_id, kind, at) SELECT r.rental_id, k, r.rented_at FROM store.rental r "
    "JOIN store.customer c USING (customer_id), unnest(ARRAY['out', 'back']) k WHERE c.world_id = %(w)s",
    "UPDATE store.customer SET tier = 'gold' WHERE world_id = %(w)s AND name = 'Customer 2'",
    "INSERT INTO store.customer_note SELECT customer_id, 'Prefers ' || name || ' evenings' FROM store.customer "
    "WHERE world_id = %(w)s",
    "INSERT INTO store.payment (rental_id, amount, paid_at) "
    "SELECT r.rental_id, 3.50, '2025-12-31'::date + (r.rental_id %% 2)::integer FROM store.rental r "
    "JOIN store.customer c USING (customer_id) WHERE c.world_id = %(w)s",
)


def create_store(database, stage: str = "BETA") -> None:
    migrate(database, stage=stage, app_schema="none")
    with database.connect() as conn:
        for statement in STORE_DDL:
            conn.execute(sql.SQL(statement))


def fill_store_world(database, world: str, template: bool = True) -> None:
    with database.connect() as conn:
        conn.execute(sql.SQL('INSERT INTO "WorldMeta" (id, name, environment, "isTemplate") '
                             "VALUES (%s, %s, 'BETA', %s)"), [world, world, template])
        for statement in FILL_WORLD:
            conn.execute(sql.SQL(statement), {"w": world})


def world_graph(database, world: str) -> dict[str, list[tuple]]:
    """The world's rows with keys replaced by their position, so copies compare equal to their template."""
    return {
        "staff": database.query(
            "SELECT s.name, c.name, c.world_id FROM store.staff s JOIN store.customer c "
            "ON c.customer_id = s.favourite_customer WHERE s.world_id = %s ORDER BY s.staff_id", (world,)),
        "customer": database.query(
            "SELECT c.name, c.email, s.name, s.world_id, c.tier FROM store.customer c LEFT JOIN store.staff s "
            "ON s.staff_id = c.served_by WHERE c.world_id = %s ORDER BY c.customer_id", (world,)),
        "note": database.query(
            "SELECT n.note, c.name FROM store.customer_note n JOIN store.customer c USING (customer_id) "
            "WHERE c.world_id = %s ORDER BY 1", (world,)),
        "rental": database.query(
            "SELECT c.name, c.world_id, f.title, r.rented_at FROM store.rental r JOIN store.customer c USING "
            "(customer_id) JOIN store.film f USING (film_id) WHERE c.world_id = %s ORDER BY r.rental_id", (world,)),
        "event": database.query(
            "SELECT c.name, r.rented_at, e.kind FROM store.rental_event e JOIN store.rental r USING (rental_id) "
            "JOIN store.customer c USING (customer_id) WHERE c.world_id = %s ORDER BY e.event_id", (world,)),
        "payment": database.query(
            "SELECT c.name, r.rented_at, p.amount, p.paid_at FROM store.payment p JOIN store.rental r USING (rental_id) "
            "JOIN store.customer c USING (customer_id) WHERE c.world_id = %s ORDER BY p.payment_id", (world,)),
    }
