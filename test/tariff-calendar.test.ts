/**
 * The report calendar (tariff_slots) as the bridge keeps it: only for meters with a tariff, in the archive's worker
 * (through Archive.call), only days not written yet; a changed tariff rewrites the quarters from now on and keeps
 * the past ones' prices.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { migrate, openWritable, sqlDir } from "../src/outputs/archive/db.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { endOfNextMonth, writeCalendar } from "../src/tariffs/calendar.js";
import { type CalendarRunner, calendarMeters, TariffService } from "../src/tariffs/index.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";

const AMS = "Europe/Amsterdam";
const NOW = Date.parse("2025-03-20T10:07:00Z");
const FIRST = Date.parse("2025-03-10T08:00:00Z");
const dir = mkdtempSync(join(tmpdir(), "m2m-calendar-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (price: number) =>
  parseConfig({
    archive: { path: join(dir, "a.sqlite"), interval: 0 },
    meters: [
      { id: "priced", type: "dsmr", port: "/dev/null", timezone: AMS },
      { id: "plain", type: "dsmr", port: "/dev/null", timezone: AMS },
    ],
    tariffs: { t: { meters: ["priced"], currency: "EUR", import: price } },
  });

describe("the bridge's calendar", () => {
  it("is written in the archive's worker, only for meters with a tariff, from their first data to the end of next month", async () => {
    const cfg = config(0.3);
    const clock = new ManualClock(NOW);
    const archive = new Archive(cfg.archive, { clock, log: recordingLog().log });
    await archive.start();
    for (const id of ["priced", "plain"]) archive.add({ meterId: id, time: FIRST, values: { energy_import_kwh: 1 } });
    await archive.flush();
    const calls: string[] = [];
    const runner: CalendarRunner = {
      call: (method, spec, at) => {
        calls.push(`${method}:${spec.id}`);
        return archive.call(method, spec, at);
      },
    };
    const tariffs = new TariffService(cfg, { clock, log: recordingLog().log });
    tariffs.startCalendar(runner);
    await tariffs.calendarDone;
    tariffs.stop();
    await archive.stop();
    expect(calls).toEqual(["refreshCalendar:priced"]);
    const db = openArchiveReadOnly(cfg.archive.path);
    const rows = db
      .prepare(
        "SELECT meter_id, min(day) AS first, max(day) AS last, count(*) AS n, max(import_price) AS p FROM tariff_slots GROUP BY meter_id",
      )
      .all();
    db.close();
    // 10 March to 30 April: 52 days, one of them (30 March) 23 hours long.
    expect(endOfNextMonth(AMS, NOW)).toBe(Date.parse("2025-04-30T22:00:00Z") - 1);
    expect(rows).toEqual([{ meter_id: "priced", first: "2025-03-10", last: "2025-04-30", n: 52 * 96 - 4, p: 0.3 }]);
  });

  it("writes only days not written yet; a changed tariff rewrites from now on and keeps the past", () => {
    const db = openWritable(join(dir, "a.sqlite"));
    try {
      migrate(db, sqlDir());
      const priced = (price: number) => calendarMeters(config(price)).find((m) => m.id === "priced")!;
      const to = endOfNextMonth(AMS, NOW);
      expect(writeCalendar(db, priced(0.3), FIRST, to, NOW)).toBe(0);
      // One more day at the end: its 96 quarters.
      expect(writeCalendar(db, priced(0.3), FIRST, to + 86_400_000, NOW)).toBe(96);
      const changed = writeCalendar(db, priced(0.4), FIRST, to, NOW);
      const price = (at: string) =>
        (
          db.prepare("SELECT import_price AS p FROM tariff_slots WHERE meter_id = 'priced' AND start = ?").get(at) as {
            p: number;
          }
        ).p;
      expect(price("2025-03-20T09:45:00.000Z")).toBe(0.3);
      expect(price("2025-03-20T10:00:00.000Z")).toBe(0.4);
      expect(price("2025-04-30T21:45:00.000Z")).toBe(0.4);
      // Every quarter from now on is deleted (the extra day too), then those up to `to` are written again.
      const future = (to + 1 - Date.parse("2025-03-20T10:00:00Z")) / 900_000;
      expect(changed).toBe(future + 96 + future);
      expect(writeCalendar(db, priced(0.4), FIRST, to, NOW)).toBe(0);
    } finally {
      db.close();
    }
  });
});
