/**
 * archive.retention: raw readings older than N days are deleted in the archive's worker, hourly energy stays, the
 * rows per meter are kept counted, and a new archive gives the space back to the file system. Then the diagnostic
 * sensors that show the archive's size and rows.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { QUANTITIES } from "../src/model/quantities.js";
import type { Reading } from "../src/model/types.js";
import { ArchiveDiagnostics } from "../src/outputs/archive/diagnostics.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";

const DAY = 86_400_000;
const START = Date.parse("2025-06-01T00:00:00Z");
const NOW = START + 5 * DAY;
const dir = mkdtempSync(join(tmpdir(), "m2m-retention-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const path = join(dir, "a.sqlite");

const reading = (meterId: string, t: number): Reading => ({
  meterId,
  time: t,
  values: { energy_import_kwh: 1000 + (t - START) / 3_600_000, power_import_w: 1000, voltage_l1_v: 230 },
});

function table(sql: string): unknown[] {
  const db = openArchiveReadOnly(path);
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

describe("archive.retention", () => {
  it("deletes readings older than the days kept, keeps every hour's energy and the counts right", async () => {
    const writer = new Archive({ enabled: true, path, interval: 0 }, { clock: new ManualClock(NOW) });
    await writer.start();
    for (let t = START; t <= NOW; t += 60_000) {
      writer.add(reading("home", t));
      if (t % (10 * 60_000) === 0) writer.add(reading("other", t));
    }
    await writer.stop();
    const hours = table("SELECT * FROM energy_hourly ORDER BY meter_id, hour");
    expect(hours.length).toBe(2 * (5 * 24 + 1));
    expect(table("SELECT id, readings FROM meters ORDER BY id")).toEqual([
      { id: "home", readings: 5 * 1440 + 1 },
      { id: "other", readings: 5 * 144 + 1 },
    ]);
    const before = statSync(path).size;

    const log = recordingLog();
    const kept = new Archive(
      { enabled: true, path, interval: 0, retention: 2 },
      { clock: new ManualClock(NOW), log: log.log },
    );
    await kept.start();
    const deleted = await kept.retained;
    await kept.stop();
    const cutoff = new Date(NOW - 2 * DAY).toISOString();
    expect(deleted).toBe(3 * 1440 + 3 * 144);
    expect(log.at("info").some((l) => l.includes(`${deleted} reading(s) older than 2 days deleted`))).toBe(true);
    expect(table(`SELECT count(*) AS n FROM readings WHERE time < '${cutoff}'`)).toEqual([{ n: 0 }]);
    expect(table("SELECT id, readings, first_seen FROM meters ORDER BY id")).toEqual([
      { id: "home", readings: 2 * 1440 + 1, first_seen: cutoff },
      { id: "other", readings: 2 * 144 + 1, first_seen: cutoff },
    ]);
    expect(table("SELECT * FROM energy_hourly ORDER BY meter_id, hour")).toEqual(hours);
    // A new archive is created with incremental auto_vacuum: the deleted readings' pages leave the file.
    expect(table("PRAGMA auto_vacuum")).toEqual([{ auto_vacuum: 2 }]);
    expect(statSync(path).size).toBeLessThan(before * 0.7);
  });

  it("a late reading in an hour whose readings are gone does not change its energy", async () => {
    const hour = "SELECT import_kwh FROM energy_hourly WHERE meter_id = 'home' AND hour = '2025-06-01T10:00:00Z'";
    const before = table(hour);
    const archive = new Archive({ enabled: true, path, interval: 0, retention: 2 }, { clock: new ManualClock(NOW) });
    await archive.start();
    await archive.retained;
    archive.add(reading("home", START + 10.5 * 3_600_000));
    await archive.stop();
    expect(table(hour)).toEqual(before);
  });
});

describe("archive diagnostics", () => {
  it("publishes the archive's size and each meter's rows as diagnostic values of the meters", async () => {
    const bus = new Bus();
    const seen: Reading[] = [];
    bus.subscribe("test", "reading", (r) => {
      seen.push(r);
    });
    const archive = new Archive({ enabled: true, path, interval: 0 }, { clock: new ManualClock(NOW) });
    await archive.start();
    await new ArchiveDiagnostics(archive, bus, ["home", "other", "none"], recordingLog().log).publish();
    await archive.stop();
    const size = statSync(path).size;
    expect(seen.map((r) => [r.meterId, r.values.archive_rows])).toEqual([
      ["home", 2 * 1440 + 2],
      ["other", 2 * 144 + 1],
      ["none", 0],
    ]);
    const mb = seen[0]?.values.archive_size_mb as number;
    expect(mb).toBeGreaterThan(0);
    // The file with its log while open; after closing the log is folded in, so the file alone is no bigger.
    expect(mb * 1e6).toBeGreaterThanOrEqual(size * 0.9);
    for (const name of ["archive_size_mb", "archive_rows"]) {
      const q = QUANTITIES.get(name);
      expect(q?.entityCategory).toBe("diagnostic");
      expect(q?.archive).toBe(false);
    }
    expect(QUANTITIES.get("archive_size_mb")).toMatchObject({ deviceClass: "data_size", unit: "MB" });
  });
});
