/**
 * The interval pipeline against a real archive (worker thread, SQLite file): revisions kept, the newest current,
 * imports idempotent, and the hourly and daily views equal to the sums of the CSVs they came from, exactly.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import type { Interval } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { expectedTotals, smtCsv, smtDay, wh } from "./helpers/smt.js";

const ZONE = "America/Chicago";
const received = (iso: string): number => Date.parse(iso);

describe("interval pipeline and archive", () => {
  let dir: string;
  let archive: Archive;
  let pipeline: IntervalPipeline;
  const bus = new Bus();
  const published: Interval[][] = [];
  const readings: Record<string, unknown>[] = [];
  bus.subscribe("test", "intervals", (i) => {
    published.push(i);
  });
  bus.subscribe("test", "reading", (r) => {
    readings.push(r.values);
  });

  const db = () => openArchiveReadOnly(join(dir, "a.sqlite"));
  const parse = (rows: ReturnType<typeof smtDay>, meterId = "texas") =>
    parseSmtCsv(smtCsv(rows), { file: "t.csv", meterId }).intervals;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-intervals-"));
    archive = new Archive({ enabled: true, path: join(dir, "a.sqlite"), interval: 0 });
    await archive.start();
    pipeline = new IntervalPipeline(archive, bus);
  });
  afterAll(async () => {
    await archive.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores a batch once: the same email again adds no revision and publishes nothing", async () => {
    const intervals = parse(smtDay({ day: "2025-01-15" }));
    const batch = {
      meterId: "texas",
      timezone: ZONE,
      intervals,
      receivedAt: received("2025-01-16T17:02:00Z"),
      origin: "imap:test/INBOX/1/1",
    };
    const first = await pipeline.ingest(batch);
    expect(first).toMatchObject({ intervals: 96, revisions: 96, changed: 96, seenBefore: false });
    expect(first.firstChanged).toBe(Date.parse("2025-01-15T06:00:00Z"));
    await bus.idle();
    expect(published.at(-1)).toHaveLength(96);
    const before = published.length;
    const again = await pipeline.ingest(batch);
    expect(again).toMatchObject({ revisions: 0, changed: 0, seenBefore: true });
    await bus.idle();
    expect(published.length).toBe(before);
    const d = db();
    expect(d.prepare("SELECT count(*) AS n FROM interval_revisions WHERE meter_id = 'texas'").get()).toEqual({ n: 96 });
    expect(d.prepare("SELECT count(*) AS n FROM interval_imports WHERE meter_id = 'texas'").get()).toEqual({ n: 1 });
    d.close();
  });

  it("keeps every revision of a revised day, the newest current, and changes only the revised intervals", async () => {
    const original = smtDay({ day: "2025-01-20", revision: "01/21/2025 07:00:00", estimated: [10, 11] });
    const revised = smtDay({
      day: "2025-01-20",
      revision: "01/23/2025 09:30:00",
      override: (_c, i) => (i === 10 ? "1.234" : i === 11 ? ".5" : undefined),
    });
    await pipeline.ingest({
      meterId: "texas",
      timezone: ZONE,
      intervals: parse(original),
      receivedAt: received("2025-01-21T17:00:00Z"),
    });
    const r = await pipeline.ingest({
      meterId: "texas",
      timezone: ZONE,
      intervals: parse(revised),
      receivedAt: received("2025-01-23T17:00:00Z"),
    });
    // Only the two estimated intervals got new values (and lost the estimate); the other 94 repeat themselves.
    expect(r).toMatchObject({ revisions: 2, changed: 2 });
    expect(r.firstChanged).toBe(Date.parse("2025-01-20T08:30:00Z"));
    const d = db();
    const current = d
      .prepare(
        "SELECT start, energy_kwh, quality, revisions FROM intervals_current WHERE meter_id = 'texas' AND start = ?",
      )
      .get("2025-01-20T08:30:00.000Z");
    expect(current).toEqual({ start: "2025-01-20T08:30:00.000Z", energy_kwh: 1.234, quality: "actual", revisions: 2 });
    const history = d
      .prepare(
        "SELECT energy_kwh, quality, revised_at FROM interval_revisions WHERE meter_id = 'texas' AND start = ? ORDER BY revised_at",
      )
      .all("2025-01-20T08:30:00.000Z");
    expect(history).toEqual([
      { energy_kwh: Number(original[10]!.kwh), quality: "estimated", revised_at: "2025-01-21T13:00:00.000Z" },
      { energy_kwh: 1.234, quality: "actual", revised_at: "2025-01-23T15:30:00.000Z" },
    ]);
    const daily = d
      .prepare(
        "SELECT import_kwh, intervals, estimated FROM intervals_daily WHERE meter_id = 'texas' AND day = '2025-01-20'",
      )
      .get();
    const { daily: expected } = expectedTotals([{ day: "2025-01-20", rows: revised }]);
    expect(daily).toEqual({ import_kwh: expected.get("2025-01-20")!.import / 1000, intervals: 96, estimated: 0 });
    d.close();

    // The older email read again later (a mailbox re-read after a UIDVALIDITY change) is history, not current.
    const late = await pipeline.ingest({
      meterId: "texas",
      timezone: ZONE,
      intervals: parse(original),
      receivedAt: received("2025-01-21T17:00:00Z"),
    });
    expect(late).toMatchObject({ revisions: 0, changed: 0 });
  });

  it("an older revision arriving after a newer one is kept as history and does not become current", async () => {
    const newer = smtDay({ day: "2025-02-01", revision: "02/04/2025 08:00:00", seed: 1 });
    const older = smtDay({ day: "2025-02-01", revision: "02/02/2025 08:00:00", seed: 2 });
    await pipeline.ingest({
      meterId: "late",
      timezone: ZONE,
      intervals: parse(newer, "late"),
      receivedAt: received("2025-02-04T17:00:00Z"),
    });
    const r = await pipeline.ingest({
      meterId: "late",
      timezone: ZONE,
      intervals: parse(older, "late"),
      receivedAt: received("2025-02-02T17:00:00Z"),
    });
    expect(r.changed).toBe(0);
    expect(r.revisions).toBe(older.filter((x, i) => x.kwh !== newer[i]!.kwh).length);
    const d = db();
    const day = d
      .prepare("SELECT import_kwh FROM intervals_daily WHERE meter_id = 'late' AND day = '2025-02-01'")
      .get() as { import_kwh: number };
    expect(day.import_kwh).toBe(newer.reduce((a, x) => a + wh(x.kwh), 0) / 1000);
    d.close();
  });

  it("hourly and daily totals equal the CSV sums exactly, across both DST days and an export channel", async () => {
    const days = ["2024-03-09", "2024-03-10", "2024-03-11", "2024-11-02", "2024-11-03", "2024-11-04"].map((day) => ({
      day,
      rows: smtDay({ day, channels: ["Consumption", "Surplus Generation"] }),
    }));
    for (const { rows } of days)
      await pipeline.ingest({
        meterId: "dst",
        timezone: ZONE,
        intervals: parse(rows, "dst"),
        receivedAt: received("2024-12-01T00:00:00Z"),
      });
    const { hourly, daily } = expectedTotals(days);
    const d = db();
    const hours = d
      .prepare(
        "SELECT hour, import_kwh, export_kwh, intervals FROM intervals_hourly WHERE meter_id = 'dst' ORDER BY hour",
      )
      .all() as {
      hour: string;
      import_kwh: number;
      export_kwh: number;
      intervals: number;
    }[];
    expect(hours.map((h) => h.hour)).toEqual([...hourly.keys()].sort());
    for (const h of hours) {
      expect(h.import_kwh, h.hour).toBe(hourly.get(h.hour)!.import / 1000);
      expect(h.export_kwh, h.hour).toBe(hourly.get(h.hour)!.export / 1000);
      expect(h.intervals, h.hour).toBe(8);
    }
    // 6 days: 24 + 23 + 24 + 24 + 25 + 24 hours.
    expect(hours).toHaveLength(144);
    const days2 = d
      .prepare("SELECT day, import_kwh, export_kwh, intervals FROM intervals_daily WHERE meter_id = 'dst' ORDER BY day")
      .all();
    expect(days2).toEqual(
      days.map(({ day }) => ({
        day,
        import_kwh: daily.get(day)!.import / 1000,
        export_kwh: daily.get(day)!.export / 1000,
        intervals: day === "2024-03-10" ? 184 : day === "2024-11-03" ? 200 : 192,
      })),
    );
    d.close();
  });

  it("summarises the latest full day and the newest interval as a reading for MQTT", async () => {
    readings.length = 0;
    const full = smtDay({ day: "2025-06-15", channels: ["Consumption", "Surplus Generation"] });
    await pipeline.ingest({
      meterId: "sum",
      timezone: ZONE,
      intervals: parse(full, "sum"),
      receivedAt: received("2025-06-16T17:00:00Z"),
    });
    // A partial next day (half the rows) does not count as full.
    const partial = smtDay({ day: "2025-06-16" }).slice(0, 48);
    await pipeline.ingest({
      meterId: "sum",
      timezone: ZONE,
      intervals: parse(partial, "sum"),
      receivedAt: received("2025-06-17T17:00:00Z"),
    });
    await pipeline.publishSummary("sum", ZONE);
    await bus.idle();
    const { daily } = expectedTotals([{ day: "2025-06-15", rows: full }]);
    expect(readings.at(-1)).toEqual({
      last_day: "2025-06-15",
      energy_import_last_day_kwh: daily.get("2025-06-15")!.import / 1000,
      energy_export_last_day_kwh: daily.get("2025-06-15")!.export / 1000,
      interval_end_at: "2025-06-16T17:00:00.000Z",
    });
  });

  it("rejects intervals it cannot store, and stores the rest", async () => {
    const good: Interval = {
      meterId: "x",
      start: Date.parse("2025-05-01T05:00:00Z"),
      end: Date.parse("2025-05-01T05:15:00Z"),
      energyKwh: 0.2,
      direction: "import",
      quality: "actual",
    };
    const r = await pipeline.ingest({
      meterId: "x",
      timezone: ZONE,
      intervals: [good, { ...good, start: good.end }, { ...good, energyKwh: Number.NaN }],
      receivedAt: Date.now(),
      origin: "file:x",
    });
    expect(r.revisions).toBe(1);
    const d = db();
    expect(d.prepare("SELECT errors FROM interval_imports WHERE meter_id = 'x'").get()).toEqual({ errors: 2 });
    d.close();
  });
});
