import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { DECODERS } from "../src/sources/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { ESIID, expectedTotals, HEADER, smtCsv, smtDay, wh } from "./helpers/smt.js";

const opts = { file: "day.csv", meterId: "texas" };
const iso = (ms: number): string => new Date(ms).toISOString();
const sumWh = (xs: { energyKwh: number | null }[]): number =>
  xs.reduce((a, i) => a + Math.round((i.energyKwh ?? 0) * 1000), 0);

/** Intervals must tile the day: each starts where the previous ended, from local midnight to the next. */
function expectTiled(starts: number[], from: string, to: string): void {
  expect(iso(starts[0]!)).toBe(from);
  for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBe(15 * 60_000);
  expect(iso(starts.at(-1)! + 15 * 60_000)).toBe(to);
}

describe("Smart Meter Texas CSV", () => {
  it("reads a normal day: 96 intervals from local midnight (CST, UTC-6), kWh without leading zero, the ESIID without its apostrophe", () => {
    const rows = smtDay({ day: "2025-01-15" });
    const r = parseSmtCsv(smtCsv(rows), opts);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.intervals).toHaveLength(96);
    expectTiled(
      r.intervals.map((i) => i.start),
      "2025-01-15T06:00:00.000Z",
      "2025-01-16T06:00:00.000Z",
    );
    expect(r.esiids).toEqual([ESIID]);
    expect(r.intervals[0]).toMatchObject({
      meterId: "texas",
      direction: "import",
      quality: "actual",
      day: "2025-01-15",
    });
    expect(r.intervals[0]!.energyKwh).toBe(Number(rows[0]!.kwh));
    expect(rows[0]!.kwh).toMatch(/^\.\d+$/);
    // REVISION_DATE 01/16/2025 07:41:02 Central = 13:41:02 UTC.
    expect(r.intervals[0]!.revision).toBe("2025-01-16T13:41:02.000Z");
    expect(sumWh(r.intervals)).toBe(rows.reduce((a, x) => a + wh(x.kwh), 0));
  });

  it("spring forward: 96 rows, the 4 blank rows of 02:00–02:45 dropped, 92 intervals with none lost or doubled", () => {
    const rows = smtDay({ day: "2022-03-13" });
    expect(rows).toHaveLength(96);
    expect(rows.filter((x) => x.kwh === "").map((x) => x.text.split(",").slice(3, 8).join(","))).toEqual([
      "02:00,02:15,,,Consumption",
      "02:15,02:30,,,Consumption",
      "02:30,02:45,,,Consumption",
      "02:45,03:00,,,Consumption",
    ]);
    const r = parseSmtCsv(smtCsv(rows), opts);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.skippedGapRows).toBe(4);
    expect(r.intervals).toHaveLength(92);
    // 01:45 CST is 07:45Z; the next interval, 03:00 CDT, is 08:00Z.
    expectTiled(
      r.intervals.map((i) => i.start),
      "2022-03-13T06:00:00.000Z",
      "2022-03-14T05:00:00.000Z",
    );
    expect(r.intervals.every((i) => i.quality === "actual")).toBe(true);
  });

  it("fall back: 100 rows with the mislabelled 02:00,01:15 row, the repeated hour first in CDT then in CST", () => {
    const rows = smtDay({ day: "2022-11-06" });
    expect(rows.map((x) => x.text.split(",").slice(3, 5).join(",")).slice(7, 10)).toEqual([
      "01:45,02:00",
      "02:00,01:15",
      "01:15,01:30",
    ]);
    const r = parseSmtCsv(smtCsv(rows), opts);
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.intervals).toHaveLength(100);
    expectTiled(
      r.intervals.map((i) => i.start),
      "2022-11-06T05:00:00.000Z",
      "2022-11-07T06:00:00.000Z",
    );
    // Row 9 (the mislabelled one) is 01:00 CST = 07:00Z; row 5 is 01:00 CDT = 06:00Z.
    expect(iso(r.intervals[4]!.start)).toBe("2022-11-06T06:00:00.000Z");
    expect(iso(r.intervals[8]!.start)).toBe("2022-11-06T07:00:00.000Z");
    expect(r.intervals[8]!.energyKwh).toBe(Number(rows[8]!.kwh));
  });

  it("maps every row to the UTC instant the fixture wrote it for, on all three kinds of day", () => {
    for (const day of ["2024-03-10", "2024-07-04", "2024-11-03"]) {
      const rows = smtDay({ day, channels: ["Consumption", "Surplus Generation"] });
      const r = parseSmtCsv(smtCsv(rows), opts);
      const expected = rows
        .filter((x) => x.start !== null)
        .map((x) => `${x.channel === "Consumption" ? "import" : "export"} ${iso(x.start!)}`);
      expect(r.intervals.map((i) => `${i.direction} ${iso(i.start)}`)).toEqual(expected);
    }
  });

  it("reads Surplus Generation as export, E as estimated, and zero written as 0", () => {
    const rows = smtDay({ day: "2025-06-15", channels: ["Consumption", "Surplus Generation"], estimated: [40] });
    const r = parseSmtCsv(smtCsv(rows), opts);
    expect(r.errors).toEqual([]);
    const exp = r.intervals.filter((i) => i.direction === "export");
    expect(exp).toHaveLength(96);
    expect(exp[0]!.energyKwh).toBe(0);
    expect(rows.find((x) => x.channel === "Surplus Generation")!.kwh).toBe("0");
    expect(r.intervals.filter((i) => i.quality === "estimated").map((i) => i.direction)).toEqual(["import", "export"]);
    const { daily } = expectedTotals([{ day: "2025-06-15", rows }]);
    expect(sumWh(exp)).toBe(daily.get("2025-06-15")!.export);
    expect(sumWh(r.intervals.filter((i) => i.direction === "import"))).toBe(daily.get("2025-06-15")!.import);
  });

  it("reports a malformed row with its file and line and keeps the others", () => {
    const rows = smtDay({ day: "2025-02-03" });
    const lines = smtCsv(rows).split("\n");
    lines[11] = lines[11]!.replace(/,\.?\d*\.?\d*,A,/, ",1.2.3,A,"); // line 12 of the file
    lines[21] = "'10443720000000001,02/03/2025,garbage";
    lines[31] = lines[31]!.replace("Consumption", "Export");
    const r = parseSmtCsv(lines.join("\n"), { file: "email 7/IntervalData.csv", meterId: "texas" });
    expect(r.errors).toEqual([
      { file: "email 7/IntervalData.csv", line: 12, reason: 'USAGE_KWH "1.2.3" is not a number of kWh' },
      { file: "email 7/IntervalData.csv", line: 22, reason: "expected 8 columns, got 3" },
      {
        file: "email 7/IntervalData.csv",
        line: 32,
        reason: 'CONSUMPTION_SURPLUSGENERATION "Export" is neither Consumption nor Surplus Generation',
      },
    ]);
    expect(r.intervals).toHaveLength(93);
    expect(r.warnings).toEqual([
      "email 7/IntervalData.csv: 02/03/2025 Consumption has 93 intervals; a whole day in America/Chicago has 96",
    ]);
  });

  it("rejects a reading in the skipped hour, a third pass of the repeated hour, and a date that does not exist", () => {
    const spring = smtDay({ day: "2022-03-13", override: (_c, i) => (i === 9 ? ".1" : undefined) });
    spring[9]!.text = spring[9]!.text.replace(",,,Consumption", ",.1,A,Consumption");
    const r1 = parseSmtCsv(smtCsv(spring), opts);
    expect(r1.errors).toEqual([
      {
        file: "day.csv",
        line: 11,
        reason: "03/13/2022 02:15 does not exist in America/Chicago (clocks skip it) but has a reading",
      },
    ]);
    const fall = smtDay({ day: "2022-11-06" });
    const extra = fall[9]!.text;
    const r2 = parseSmtCsv(`${smtCsv(fall)}${extra}\n`, opts);
    expect(r2.errors).toEqual([{ file: "day.csv", line: 102, reason: "11/06/2022 01:15 Consumption appears 3 times" }]);
    const r3 = parseSmtCsv(`${HEADER}\n'1,02/30/2025,03/01/2025 07:00:00,00:00,00:15,.1,A,Consumption\n`, opts);
    expect(r3.errors[0]).toMatchObject({ line: 2, reason: 'USAGE_DATE "02/30/2025" is not a date MM/DD/YYYY' });
  });

  it("accepts CRLF, a byte-order mark, a leading space in times and quoted cells", () => {
    const rows = smtDay({ day: "2025-03-20" });
    const text = `\uFEFF${smtCsv(rows, "\r\n")
      .replace(",23:45,00:00,", ",23:45, 00:00,")
      .replace(/Consumption/g, '"Consumption"')}`;
    const r = parseSmtCsv(text, opts);
    expect(r.errors).toEqual([]);
    expect(r.intervals).toHaveLength(96);
  });

  it("reads only the configured ESIID when a file lists several premises", () => {
    const a = smtDay({ day: "2025-04-01" });
    const b = smtDay({ day: "2025-04-01", esiid: "10443720000000099", seed: 5 });
    const text = smtCsv([...a, ...b]);
    const both = parseSmtCsv(text, opts);
    expect(both.esiids).toEqual([ESIID, "10443720000000099"]);
    const one = parseSmtCsv(text, { ...opts, esiid: "10443720000000099" });
    expect(one.intervals).toHaveLength(96);
    expect(one.otherEsiidRows).toBe(96);
    expect(sumWh(one.intervals)).toBe(b.reduce((s, x) => s + wh(x.kwh), 0));
  });

  it("says so when the file is not an SMT interval CSV", () => {
    const r = parseSmtCsv("Date,Usage\n2025-01-01,3\n", opts);
    expect(r.errors[0]).toMatchObject({ line: 1 });
    expect(r.errors[0]!.reason).toMatch(/not a Smart Meter Texas interval CSV/);
    expect(r.intervals).toEqual([]);
  });

  it("decode --format smt-csv streams one JSON object per interval and rejected rows with file:line", async () => {
    const rows = smtDay({ day: "2022-11-06" });
    const lines = smtCsv(rows).split("\n");
    lines[50] = lines[50]!.replace(",A,", ",X,");
    // Cut into small chunks, as a pipe delivers them.
    const text = lines.join("\n");
    const chunks = text.match(/[\s\S]{1,97}/g)!.map((c) => Buffer.from(c));
    const items = [];
    for await (const item of (await DECODERS["smt-csv"]!())(Readable.from(chunks), {
      source: "-",
      timezone: "America/Chicago",
    }))
      items.push(item);
    const ok = items.filter((i) => i.ok) as { ok: true; json: Record<string, unknown> }[];
    expect(ok).toHaveLength(99);
    expect(ok[8]!.json).toEqual({
      esiid: ESIID,
      day: "2022-11-06",
      start: "2022-11-06T07:00:00.000Z",
      end: "2022-11-06T07:15:00.000Z",
      direction: "import",
      energy_kwh: Number(rows[8]!.kwh),
      quality: "actual",
      revision: "2022-11-07T13:41:02.000Z",
    });
    expect(items.filter((i) => !i.ok)).toEqual([
      { ok: false, reason: '-:51: ESTIMATED_ACTUAL "X" is neither A nor E' },
    ]);
  });
});
