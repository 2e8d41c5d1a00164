-- Runs once, when the postgres container initialises an empty data directory.
-- Creates what the example pipelines and the postgres-cdc connector expect.

-- A role that may read tables and stream logical replication; the connector's `url` uses it.
CREATE ROLE omconnect WITH LOGIN REPLICATION PASSWORD 'omconnect';

-- The Postgres offset store (`state: postgresql://...`) keeps its tables in this database,
-- so several `omconnect serve` workers can share offsets.
CREATE DATABASE omconnect_state OWNER omconnect;

-- Example source table for the CDC and snapshot pipelines.
CREATE TABLE public.orders (
    id          bigint PRIMARY KEY,
    customer    text NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'new',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Full row images in UPDATE/DELETE events, so change events carry a complete `before`.
ALTER TABLE public.orders REPLICA IDENTITY FULL;

INSERT INTO public.orders (id, customer, amount, status)
SELECT n, 'customer-' || (n % 100), round((n * 7.31)::numeric % 1000, 2), 'new'
FROM generate_series(1, 1000) AS n;

GRANT USAGE ON SCHEMA public TO omconnect;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO omconnect;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO omconnect;

-- The publication postgres-cdc reads (its `publication` option); the slot is created by the
-- connector itself on first start.
CREATE PUBLICATION omconnect_pub FOR TABLE public.orders;
