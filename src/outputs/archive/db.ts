import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { gasKeeper, hourKeeper } from "./hours.js";

/**
 * Opening and migrating the archive database. Used by the worker (the one writer) and by read-only
 * readers (tests, reports, the CLI); never on the main thread's meter→MQTT path.
 */

/** The nearest ancestor of `from` holding a package.json: the same from src/… (dev) and dist/… (built). */
export function packageRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
}

export function sqlDir(): string {
  return join(packageRoot(dirname(fileURLToPath(import.meta.url))), "sql");
}

/** Busy readers (a report, the sqlite3 shell) make a writer wait this long before a write fails and is retried. */
const BUSY_TIMEOUT_MS = 5000;

export function openWritable(path: string): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    // A new archive hands the pages of deleted readings (archive.retention) back to the file system; an older one
    // reuses them (SQLite ignores this once tables exist).
    db.pragma("auto_vacuum = INCREMENTAL");
    // WAL lets readers run while the bridge writes; NORMAL skips the fsync per commit, which on an SD card
    // costs more than the readings are worth (a power cut can lose the last commits, never corrupt the file).
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export function openReadOnly(path: string): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return db;
}

/**
 * Applies the `NNN_*.sql` files of `dir` in name order, each once, recording them in schema_migrations.
 * Each file runs in its own IMMEDIATE transaction that re-checks the table, so two processes opening the
 * same new file at once do not both apply it. Returns the versions applied now.
 */
export function migrate(db: Database.Database, dir: string, now: () => number = Date.now): string[] {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT)");
  const files = readdirSync(dir)
    .filter((f) => /^\d+.*\.sql$/.test(f))
    .sort();
  const has = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?");
  const record = db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
  const applied: string[] = [];
  for (const file of files) {
    const version = file.slice(0, -".sql".length);
    const sql = readFileSync(join(dir, file), "utf8");
    db.transaction(() => {
      if (has.get(version)) return;
      db.exec(sql);
      record.run(version, new Date(now()).toISOString());
      applied.push(version);
    }).immediate();
  }
  // Hourly energy of an archive that existed before energy_hours (008): filled by the same code that keeps it.
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'energy_hours_pending'").get())
    db.transaction(() => hourKeeper(db).completePending()).immediate();
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'gas_hours_pending'").get())
    db.transaction(() => gasKeeper(db).completePending()).immediate();
  return applied;
}

/** Columns the readings table lacks among `wanted`: a quantity added to the catalogue without a migration. */
export function missingColumns(db: Database.Database, wanted: readonly string[]): string[] {
  const have = new Set((db.pragma("table_info(readings)") as { name: string }[]).map((c) => c.name));
  return wanted.filter((c) => !have.has(c));
}
