import type Database from "better-sqlite3";

/**
 * Upkeep of the archive, run in its worker: raw readings older than archive.retention days deleted (hourly energy,
 * intervals and the calendar are kept), the space they took handed back, and the figures the archive's diagnostic
 * sensors show.
 */

const DAY_MS = 86_400_000;
/** Readings deleted per transaction, so that batches of new readings are written in between. */
const DELETE_SPAN_MS = DAY_MS;

export interface ArchiveSizes {
  /** The database file with its write-ahead log, bytes. */
  bytes: number;
  /** Pages free for reuse inside the file, bytes. */
  freeBytes: number;
  /** Raw readings and interval revisions per meter. */
  meters: { id: string; readings: number; intervals: number }[];
}

export function maintenanceStore(db: Database.Database, fileSize: () => number) {
  const meters = db.prepare("SELECT id, readings, first_seen AS first FROM meters ORDER BY id");
  const oldest = db.prepare<[string]>("SELECT min(time) AS t FROM readings WHERE meter_id = ?");
  const remove = db.prepare<[string, string, string]>(
    "DELETE FROM readings WHERE meter_id = ? AND time >= ? AND time < ?",
  );
  const counted = db.prepare<[number, string | null, string]>(
    "UPDATE meters SET readings = max(0, readings - ?), first_seen = ? WHERE id = ?",
  );
  const intervals = db.prepare<[string]>("SELECT count(*) AS n FROM interval_revisions WHERE meter_id = ?");

  return {
    /**
     * Deletes readings older than `days` days before `now`, a day of one meter per transaction; returns how many.
     * With auto_vacuum=incremental (archives created since) the freed pages go back to the file system, otherwise
     * SQLite reuses them for new readings and the file stops growing.
     */
    retain(days: number, now: number): number {
      const cutoff = now - days * DAY_MS;
      const cut = new Date(cutoff).toISOString();
      let deleted = 0;
      for (const m of meters.all() as { id: string }[]) {
        const first = (oldest.get(m.id) as { t: string | null }).t;
        if (first === null || first >= cut) continue;
        for (let from = Date.parse(first); from < cutoff; from += DELETE_SPAN_MS) {
          const to = Math.min(from + DELETE_SPAN_MS, cutoff);
          db.transaction(() => {
            const n = remove.run(m.id, new Date(from).toISOString(), new Date(to).toISOString()).changes;
            const left = (oldest.get(m.id) as { t: string | null }).t;
            counted.run(n, left, m.id);
            deleted += n;
          })();
        }
      }
      if (deleted > 0 && (db.pragma("auto_vacuum", { simple: true }) as number) === 2) db.pragma("incremental_vacuum");
      return deleted;
    },

    sizes(): ArchiveSizes {
      const pageSize = db.pragma("page_size", { simple: true }) as number;
      const free = db.pragma("freelist_count", { simple: true }) as number;
      return {
        bytes: fileSize(),
        freeBytes: free * pageSize,
        meters: (meters.all() as { id: string; readings: number }[]).map((m) => ({
          id: m.id,
          readings: m.readings,
          intervals: (intervals.get(m.id) as { n: number }).n,
        })),
      };
    },
  };
}
export type MaintenanceStore = ReturnType<typeof maintenanceStore>;
