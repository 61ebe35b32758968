import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

/**
 * One bridge per archive. The lock is a write transaction held open on a small SQLite file beside the archive
 * (`<archive>.lock`): SQLite takes it with the operating system's file locks, which the OS drops when the process
 * ends however it ends, so a SIGKILL or a power cut never leaves a stale lock. The holder's PID is written to
 * `<archive>.pid` for the message a second bridge prints. Commands that only read the archive (report, export)
 * never touch the lock.
 */
export class ArchiveLocked extends Error {
  override readonly name = "ArchiveLocked";
}

export interface ArchiveLock {
  release(): void;
}

export function lockArchive(archivePath: string): ArchiveLock {
  const lockPath = `${archivePath}.lock`;
  const pidPath = `${archivePath}.pid`;
  mkdirSync(dirname(lockPath), { recursive: true });
  const db = new Database(lockPath, { timeout: 0 });
  try {
    db.pragma("journal_mode = DELETE");
    db.exec("BEGIN IMMEDIATE");
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code !== "SQLITE_BUSY") throw err;
    let holder = "";
    try {
      const pid = Number.parseInt(readFileSync(pidPath, "utf8"), 10);
      if (Number.isInteger(pid) && pid > 0) holder = ` (PID ${pid})`;
    } catch {
      // No PID file: the holder is starting right now.
    }
    throw new ArchiveLocked(
      `another meter2mqtt${holder} is already running on the archive ${archivePath}: stop it first (two bridges on one meter make Home Assistant's entities flap)`,
    );
  }
  writeFileSync(pidPath, `${process.pid}\n`);
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      try {
        db.exec("ROLLBACK");
      } catch {
        // Closing releases it anyway.
      }
      db.close();
      rmSync(pidPath, { force: true });
    },
  };
}
