/**
 * Issue 14, the importers: one value check (src/model/plausible.ts) for SmartHub answers, SMT files and the
 * interval pipeline behind both. A portal's `y: 1e308` or `x: 9e18` is one rejected point, counted and reported;
 * the rest of the answer is read and nothing of the bad point reaches the totals or the archive.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { IntervalPipeline, toRows } from "../src/intervals/pipeline.js";
import { checkInterval, checkTime, checkValue } from "../src/model/plausible.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { decodePoll, totals } from "../src/sources/smarthub/decode.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { smtCsv, smtDay } from "./helpers/smt.js";

const H = 3_600_000;
const NOW = Date.UTC(2026, 11, 2, 12);
const wall = (local: string) => Date.parse(`${local}Z`);

function poll(points: { x: unknown; y: unknown }[]) {
  return {
    status: "COMPLETE",
    data: {
      ELECTRIC: [
        {
          type: "USAGE",
          timeFrame: "HOURLY",
          meters: [{ meterNumber: "1N01", seriesId: "1N01", flowDirection: "FORWARD" }],
          series: [{ name: "1N01", meterNumber: "1N01", data: points }],
        },
      ],
    },
  };
}
const hours = (from: string, ys: unknown[]) => ys.map((y, i) => ({ x: wall(from) + i * H, y }));

describe("the shared value check", () => {
  it("takes finite values in range and times between 2000 and a little after now", () => {
    expect(checkValue("interval_energy_kwh_per_hour", 1.25, 1)).toBeUndefined();
    expect(checkValue("interval_energy_kwh_per_hour", -3, 0.25)).toBeUndefined();
    expect(checkValue("interval_energy_kwh_per_hour", 1e308, 1)).toMatch(/1e\+308 is out of the plausible range/);
    expect(checkValue("interval_energy_kwh_per_hour", Number.POSITIVE_INFINITY, 1)).toMatch(/not a finite number/);
    expect(checkValue("interval_energy_kwh_per_hour", Number.NaN, 1)).toMatch(/not a finite number/);
    expect(checkValue("interval_energy_kwh_per_hour", "12", 1)).toMatch(/not a number/);
    // 100,000 kWh in a day is 4,167 an hour: plausible; in a quarter hour it is not.
    expect(checkValue("interval_energy_kwh_per_hour", 100_000, 24)).toBeUndefined();
    expect(checkValue("interval_energy_kwh_per_hour", 100_000, 0.25)).toMatch(/out of the plausible range/);
    expect(checkValue("voltage_v", 230)).toBeUndefined();
    expect(checkValue("voltage_v", -1)).toMatch(/out of the plausible range/);
    expect(checkTime(Date.UTC(2026, 0, 1), NOW)).toBeUndefined();
    expect(checkTime(9e18, NOW)).toMatch(/is not a time|in the future/);
    expect(checkTime(Date.UTC(1999, 11, 31), NOW)).toMatch(/before 2000/);
    expect(checkTime(NOW + 3 * 24 * H, NOW)).toMatch(/in the future/);
    expect(checkInterval({ start: NOW - H, end: NOW, energyKwh: 1, cost: 1e300 }, NOW)).toMatch(/^cost /);
    expect(checkInterval({ start: NOW - H, end: NOW, energyKwh: null }, NOW)).toBeUndefined();
  });
});

describe("SmartHub answers with absurd points", () => {
  it("rejects y: 1e308 and x: 9e18 as points, counts them, and keeps their kWh out of the totals", () => {
    const points = [
      ...hours("2026-11-01T00:00:00", [0.5, 1e308, 0.75]),
      { x: 9e18, y: 4 },
      { x: -1e15, y: 2 },
      ...hours("2026-11-01T03:00:00", [1]),
    ];
    const r = decodePoll(poll(points), { meterId: "coop", timezone: "America/New_York", now: NOW });
    expect(r.rejected).toHaveLength(3);
    const why = (n: number) => r.rejected.find((l) => l.includes(`point ${n}:`));
    expect(why(1)).toMatch(/point 1: y 1e\+308 is out of the plausible range/);
    expect(why(3)).toMatch(/point 3: x .*(not a time|in the future)/);
    expect(why(4)).toMatch(/point 4: x .*before 2000/);
    expect(r.intervals.map((i) => i.energyKwh)).toEqual([0.5, 0.75, 1]);
    expect(totals(r.intervals).importKwh).toBe(2.25);
  });

  it("`decode --format smarthub-json` prints the good points and one line per bad one, exit 0", () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-hostile-import-"));
    try {
      const file = join(dir, "poll.json");
      writeFileSync(file, JSON.stringify(poll([...hours("2026-11-01T00:00:00", [0.5, 1e308]), { x: 9e18, y: 1 }])));
      const r = spawnSync(
        process.execPath,
        ["--import", "tsx", "src/cli.ts", "decode", "--format", "smarthub-json", file],
        { cwd: join(import.meta.dirname, ".."), encoding: "utf8" },
      );
      expect(r.status).toBe(0);
      const out = r.stdout.trim().split("\n");
      expect(out).toHaveLength(1);
      expect(JSON.parse(out[0]!)).toMatchObject({ energy_kwh: 0.5, start: "2026-11-01T04:00:00.000Z" });
      const err = r.stderr.trim().split("\n");
      expect(err).toHaveLength(2);
      for (const l of err) expect(l).toMatch(/^rejected .*poll\.json: USAGE series "1N01" point \d: [xy] /);
      expect(r.stderr).not.toMatch(/Infinity|cannot read|\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Smart Meter Texas CSVs with absurd rows", () => {
  it("rejects a row of 99,999,999 kWh in a quarter hour, counted with its line, and reads the rest", () => {
    const rows = smtDay({ day: "2025-01-15" });
    const bad = rows[10]!;
    const forged = { ...bad, text: bad.text.replace(`,${bad.kwh},`, ",99999999,") };
    expect(forged.text).not.toBe(bad.text);
    const r = parseSmtCsv(smtCsv([...rows.slice(0, 10), forged, ...rows.slice(11)]), {
      file: "day.csv",
      meterId: "texas",
      timezone: "America/Chicago",
    });
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ line: 12 });
    expect(r.errors[0]!.reason).toMatch(/USAGE_KWH 99999999 is out of the plausible range/);
    expect(r.intervals.filter((i) => i.direction === "import")).toHaveLength(95);
  });
});

describe("the interval pipeline", () => {
  let dir: string;
  let archive: Archive;
  let pipeline: IntervalPipeline;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-hostile-pipeline-"));
    archive = new Archive({ enabled: true, path: join(dir, "a.sqlite"), interval: 0 });
    await archive.start();
    pipeline = new IntervalPipeline(archive, new Bus());
  });
  afterAll(async () => {
    await archive?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores the plausible intervals of a batch, and counts and names the others", async () => {
    const start = Date.UTC(2026, 10, 1, 5);
    const at = (h: number, energyKwh: number | null, cost?: number) => ({
      meterId: "texas",
      start: start + h * H,
      end: start + (h + 1) * H,
      energyKwh,
      direction: "import" as const,
      quality: "actual" as const,
      ...(cost === undefined ? {} : { cost }),
    });
    const intervals = [at(0, 1), at(1, 1e308), at(2, 2, Number.POSITIVE_INFINITY), at(3, 3), at(4, 50_000)];
    const r = await pipeline.ingest({ meterId: "texas", timezone: "America/Chicago", intervals, receivedAt: NOW });
    expect(r.rejected).toHaveLength(3);
    expect(r.rejected[0]).toMatch(/texas: interval not stored, energy 1e\+308 is out of the plausible range/);
    expect(r.rejected[1]).toMatch(/cost Infinity is not a finite number/);
    const db = openArchiveReadOnly(join(dir, "a.sqlite"));
    const stored = db.prepare("SELECT energy_kwh FROM interval_revisions ORDER BY start").all() as {
      energy_kwh: number;
    }[];
    db.close();
    expect(stored.map((s) => s.energy_kwh)).toEqual([1, 3]);
    expect(toRows({ meterId: "m", timezone: "UTC", intervals, receivedAt: NOW }).rejected).toHaveLength(3);
  });
});
