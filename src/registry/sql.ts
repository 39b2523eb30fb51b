/**
 * The schema, the same for SQLite and PostgreSQL: one row per value, with a
 * UNIQUE constraint on (class, key) — the MAC is its own class — so that the
 * database itself refuses a value issued twice.
 */
export const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS glint_values (
    cls TEXT NOT NULL,
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,
    home TEXT NOT NULL,
    vm TEXT NOT NULL,
    generation INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'issued')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT glint_values_unique UNIQUE (cls, key)
  )`,
  "CREATE INDEX IF NOT EXISTS glint_values_owner ON glint_values (home, vm)",
  `CREATE TABLE IF NOT EXISTS glint_homes (
    home TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    imported_at TEXT NOT NULL
  )`,
  // The index `glint list` reads: one row per VM of a home, what list shows
  // (the identity, firmware, TPM, overlay), written with its values' rows.
  `CREATE TABLE IF NOT EXISTS glint_vms (
    home TEXT NOT NULL,
    vm TEXT NOT NULL,
    data TEXT NOT NULL,
    stamp TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (home, vm)
  )`,
  // Homes whose index was built from their files (see Registry.vmIndex).
  `CREATE TABLE IF NOT EXISTS glint_indexed (
    home TEXT PRIMARY KEY,
    indexed_at TEXT NOT NULL
  )`,
];

/** The columns of a row, in the order the INSERTs use. */
export const COLUMNS =
  "cls, key, field, value, home, vm, generation, state, created_at, updated_at";

/**
 * PostgreSQL only: the audit records of every home sharing the registry
 * (a fleet's one trail), each as its canonical line (see src/audit/).
 */
export const AUDIT_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS glint_audit (
    home TEXT NOT NULL,
    seq INTEGER NOT NULL,
    op_id TEXT NOT NULL,
    vm TEXT,
    operation TEXT NOT NULL,
    time TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (home, seq)
  )`,
];
