/**
 * Consistent archives in the Supervisor's backups of the app.
 *
 * Backups are hot: the Supervisor tars /data while the bridge keeps writing, and a SQLite file copied that way
 * (with its -wal beside it) can come back torn. So config.yaml has the Supervisor run `backup.js pre` inside the
 * running app first (`backup_pre`): it waits until everything the bridge received before that moment is committed,
 * then writes a consistent copy through SQLite's online backup API to BACKUP_COPY. The live files are left out of
 * the backup (`backup_exclude`), `backup.js post` (`backup_post`) removes the copy again, and at start-up after a
 * restore (the copy there, the live file not) `restoreArchiveCopy` puts the copy in place.
 *
 *   node /opt/meter2mqtt/dist/addon/backup.js pre|post      (METER2MQTT_DATA: the data folder, default /data)
 */
import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { createLogger, type Logger } from "../util/log.js";
import { ARCHIVE_FILE } from "./options.js";

/** The consistent copy the backup takes instead of the live archive. */
export const BACKUP_COPY = "meter2mqtt.backup.sqlite";
const PARTIAL = `${BACKUP_COPY}.partial`;

/**
 * config.yaml `backup_exclude`: the live archive and its journal files, and a copy cut short. The Supervisor
 * matches each pattern against the end of every path in the app's folders (Python's PurePath.match).
 */
export const BACKUP_EXCLUDE = [
  ARCHIVE_FILE,
  `${ARCHIVE_FILE}-wal`,
  `${ARCHIVE_FILE}-shm`,
  `${ARCHIVE_FILE}-journal`,
  `${PARTIAL}*`,
] as const;

/**
 * The archive commits what the bridge received at least once a second (src/outputs/archive, BATCH_DELAY_MS), so
 * waiting this long before the copy lets every reading from before the backup began reach the file.
 */
export const SETTLE_MS = 3000;

export interface BackupResult {
  /** False when there is no archive yet (a first start, or the archive turned off). */
  copied: boolean;
  pages?: number;
  bytes?: number;
  ms?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `backup_pre`: a consistent copy of the archive beside it, as of now. */
export async function backupPre(
  dataDir: string,
  opts: { settleMs?: number; log?: Logger } = {},
): Promise<BackupResult> {
  const log = opts.log ?? createLogger("backup");
  const live = join(dataDir, ARCHIVE_FILE);
  if (!existsSync(live)) {
    log.info(`backup: no archive at ${live} yet, nothing to copy`);
    return { copied: false };
  }
  const started = Date.now();
  await sleep(opts.settleMs ?? SETTLE_MS);
  const partial = join(dataDir, PARTIAL);
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(`${partial}${suffix}`, { force: true });
  const db = new Database(live, { fileMustExist: true });
  let pages = 0;
  try {
    db.pragma("busy_timeout = 10000");
    // All pages in one step: one read transaction, so the bridge's commits during the copy neither restart it nor
    // end up half in it (WAL lets the bridge go on writing meanwhile).
    const result = await db.backup(partial, { progress: () => 0x7fffffff });
    pages = result.totalPages;
  } finally {
    db.close();
  }
  // The copy comes out in WAL mode like its source; as a rollback-journal file it is one file, with no -wal or
  // -shm beside it for the backup to take (the bridge turns WAL on again when it opens it after a restore).
  const check = new Database(partial, { fileMustExist: true });
  try {
    check.pragma("journal_mode = DELETE");
    const ok = check.pragma("quick_check", { simple: true });
    if (ok !== "ok") throw new Error(`the copy of the archive failed its check: ${String(ok)}`);
  } finally {
    check.close();
  }
  for (const suffix of ["-wal", "-shm", "-journal"]) rmSync(`${partial}${suffix}`, { force: true });
  renameSync(partial, join(dataDir, BACKUP_COPY));
  const bytes = statSync(join(dataDir, BACKUP_COPY)).size;
  const ms = Date.now() - started;
  log.info(`backup: consistent copy of the archive written (${pages} pages, ${bytes} bytes, ${ms} ms)`);
  return { copied: true, pages, bytes, ms };
}

/** `backup_post`: the copy is in the backup now; the live archive is the one that counts again. */
export function backupPost(dataDir: string, log: Logger = createLogger("backup")): void {
  rmSync(join(dataDir, BACKUP_COPY), { force: true });
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(join(dataDir, `${PARTIAL}${suffix}`), { force: true });
  log.info("backup: copy of the archive removed");
}

/**
 * At start-up: after a restore, /data holds the backup's copy and no live archive (the Supervisor empties the
 * folder before it unpacks a backup), so the copy becomes the archive. A copy beside a live archive is left over
 * from a backup whose post step did not run, and goes.
 */
export function restoreArchiveCopy(dataDir: string): "restored" | "discarded" | "none" {
  const copy = join(dataDir, BACKUP_COPY);
  for (const suffix of ["", "-wal", "-shm", "-journal"]) rmSync(join(dataDir, `${PARTIAL}${suffix}`), { force: true });
  if (!existsSync(copy)) return "none";
  const live = join(dataDir, ARCHIVE_FILE);
  if (existsSync(live)) {
    rmSync(copy);
    return "discarded";
  }
  for (const suffix of ["-wal", "-shm", "-journal"]) rmSync(`${live}${suffix}`, { force: true });
  renameSync(copy, live);
  return "restored";
}

async function main(argv: string[]): Promise<number> {
  const dataDir = process.env.METER2MQTT_DATA || "/data";
  const step = argv[0];
  if (step === "pre") await backupPre(dataDir);
  else if (step === "post") backupPost(dataDir);
  else {
    process.stderr.write("usage: backup.js pre|post\n");
    return 2;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`backup: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
