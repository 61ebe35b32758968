/**
 * Decoding SmartHub poll answers: fixtures built here on the shapes of the real recordings (Cobb EMC's hourly and
 * daily answers, gagata's NET and RETURN meters, a newer portal's string x with COST), never copies of them.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { intervalJson, smarthubJsonDecoder } from "../src/sources/smarthub/cli.js";
import { decodePoll, totals } from "../src/sources/smarthub/decode.js";
import { type FakeSmarthubOptions, startFakeSmarthub } from "./helpers/fake-smarthub.js";

const ZONE = "America/New_York";
const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
/** Wall clock as the portal writes it: the local time, as if it were UTC. */
const wall = (local: string) => Date.parse(`${local}Z`);

type P = { x: number | string; y: number | null };

/** A USAGE entry as the portal sends it, with the keys the recordings have. */
function usageEntry(
  series: { id: string; flow: string; points: P[]; net?: boolean }[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    accountNumber: "900000001",
    connectDate: "August 28, 2020",
    editedSeries: {},
    estimatedSeries: {},
    hasDaily: true,
    hasHourly: true,
    industry: "ELECTRIC",
    meters: series.map((s) => ({
      meterNumber: s.id,
      seriesId: s.id,
      flowDirection: s.flow,
      isNetMeter: s.net ?? false,
      unitOfMeasure: "KWH",
    })),
    series: series.map((s) => ({
      meterNumber: s.id,
      name: s.id,
      data: s.points.map((p) => ({ enableDrilldown: false, ...p })),
    })),
    timeFrame: "HOURLY",
    type: "USAGE",
    unitOfMeasure: "KWH",
    ...extra,
  };
}

const answer = (...entries: Record<string, unknown>[]) => ({ data: { ELECTRIC: entries }, status: "COMPLETE" });
const hourly = (fromLocal: string, ys: number[]): P[] => ys.map((y, i) => ({ x: wall(fromLocal) + i * H, y }));

describe("SmartHub poll answers", () => {
  it("reads an hourly answer like Cobb EMC's: wall clock as UTC, meters scrubbed but named in meterToChartData", () => {
    // Three days of hours in September (EDT, UTC−4), as in the recording; 72 points.
    const ys = Array.from({ length: 72 }, (_, i) => Math.round((0.6 + ((i * 37) % 41) / 10) * 100) / 100);
    const points = hourly("2026-09-01T00:00:00", ys);
    const xmap = Object.fromEntries(
      points.map((p) => [
        String(p.x),
        { createTickDrillDownLink: false, interval: { start: p.x, end: (p.x as number) + H } },
      ]),
    );
    const entry = usageEntry([{ id: "1N0000000001", flow: "scrubbed", points }], {
      xToOrderedInterval: xmap,
      meterToChartData: {
        "Meter{serviceLocationNumber='70001', accountNumber='900000001', industry=ELECTRIC, meterNumber='1N0000000001', channel=1, flowDirection=FORWARD, isNetMeter=false, meterName='1N0000000001', seriesId='1N0000000001'}":
          [...points, ...points],
      },
      baseSeries: { data: points, name: "scrubbed" },
    });
    // TIME_OF_USE repeats every hour in one period series: it must not be counted again.
    const tou = {
      type: "TIME_OF_USE",
      meters: [{ meterNumber: "1N0000000001", seriesId: "1N0000000001 - On Peak", flowDirection: "scrubbed" }],
      series: [{ name: "1N0000000001 - On Peak", data: points }],
    };
    const r = decodePoll(answer(entry, tou), { meterId: "coop", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.intervals).toHaveLength(72);
    expect(r.notes[0]).toBe("60-minute points");
    expect(r.meters).toEqual(["1N0000000001"]);
    expect(r.hasCost).toBe(false);
    // Local midnight EDT is 04:00Z: the request's startDateTime in the recording.
    expect(iso(r.intervals[0]!.start)).toBe("2026-09-01T04:00:00.000Z");
    expect(iso(r.intervals[71]!.end)).toBe("2026-09-04T04:00:00.000Z");
    expect(r.intervals.every((i) => i.direction === "import" && i.quality === "actual" && i.cost === undefined)).toBe(
      true,
    );
    expect(totals(r.intervals).importKwh).toBeCloseTo(
      ys.reduce((a, b) => a + b, 0),
      9,
    );
  });

  it("reads a daily answer: one interval per local day, 25 hours long on the fall-back day", () => {
    const days = ["2025-11-01", "2025-11-02", "2025-11-03"];
    const points = days.map((d, i) => ({ x: wall(`${d}T00:00:00`), y: [47.06, 53.44, 57.04][i]! }));
    const entry = usageEntry([{ id: "1N0000000001", flow: "FORWARD", points }], { timeFrame: "DAILY" });
    const r = decodePoll(answer(entry), { meterId: "coop", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.intervals.map((i) => [iso(i.start), (i.end - i.start) / H, i.energyKwh])).toEqual([
      ["2025-11-01T04:00:00.000Z", 24, 47.06],
      ["2025-11-02T04:00:00.000Z", 25, 53.44],
      ["2025-11-03T05:00:00.000Z", 24, 57.04],
    ]);
  });

  it("reads a NET meter (negative is export) and leaves out its FORWARD channel, as gagata's test data has it", () => {
    const xs = ["00:15", "00:30", "00:45", "01:15", "01:30"].map((t) => wall(`2025-11-04T${t}:00`));
    const net = [1, -5, 100, 1, -1].map((y, i) => ({ x: xs[i]!, y }));
    const fwd = [1, 10, 100, 1, 1].map((y, i) => ({ x: xs[i]!, y }));
    const entry = usageEntry([
      { id: "1ND81111111", flow: "NET", net: true, points: net },
      { id: "1ND91111111", flow: "FORWARD", points: fwd },
    ]);
    const r = decodePoll(answer(entry), { meterId: "solar", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.notes).toContain(
      'USAGE series "1ND91111111" (FORWARD) not read: the NET meter gives what crossed the grid',
    );
    expect(r.notes[0]).toBe("15-minute points");
    // Both directions at every point: 10 intervals.
    expect(r.intervals).toHaveLength(10);
    expect(totals(r.intervals)).toEqual({ importKwh: 102, exportKwh: 6, cost: 0 });
    const at = (local: string, dir: string) =>
      r.intervals.find((i) => i.start === Date.parse(`${local}-05:00`) && i.direction === dir)?.energyKwh;
    expect(at("2025-11-04T00:30:00", "export")).toBe(5);
    expect(at("2025-11-04T00:30:00", "import")).toBe(0);
    expect(at("2025-11-04T00:45:00", "import")).toBe(100);
  });

  it("reads a RETURN meter as export beside the FORWARD import", () => {
    const xs = ["00:15", "00:30", "00:45", "01:15", "01:30"].map((t) => wall(`2025-11-04T${t}:00`));
    const entry = usageEntry([
      { id: "1ND87334444", flow: "RETURN", points: [0, 5, 0, 0, 1].map((y, i) => ({ x: xs[i]!, y })) },
      { id: "1ND86200137", flow: "FORWARD", points: [1, 10, 100, 1, 1].map((y, i) => ({ x: xs[i]!, y })) },
    ]);
    // gagata's data: both meters share one meterNumber; the series are told apart by seriesId.
    for (const m of entry.meters as Record<string, unknown>[]) m.meterNumber = "1ND91111111";
    const r = decodePoll(answer(entry), { meterId: "solar", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(totals(r.intervals)).toEqual({ importKwh: 113, exportKwh: 6, cost: 0 });
    expect(r.intervals.filter((i) => i.direction === "export")).toHaveLength(5);
  });

  it("reads string x labels through xToOrderedInterval, and COST onto the same interval", () => {
    const slot = { interval: { start: wall("2026-03-26T14:00:00"), end: wall("2026-03-26T15:00:00") } };
    const usage = {
      type: "USAGE",
      meters: [{ meterNumber: "METER1", flowDirection: "FORWARD" }],
      xToOrderedInterval: { "2026-03-26 14:00": slot },
      series: [{ meterNumber: "METER1", data: [{ x: "2026-03-26 14:00", y: 1.5 }] }],
    };
    const cost = {
      type: "COST",
      xToOrderedInterval: { "2026-03-26 14:00": slot },
      series: [{ meterNumber: "METER1", data: [{ x: "2026-03-26 14:00", y: 0.25 }] }],
    };
    const r = decodePoll(answer(usage, cost), { meterId: "coop", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.hasCost).toBe(true);
    // 26 March 2026 is daylight time (UTC−4).
    expect(r.intervals).toEqual([
      {
        meterId: "coop",
        start: Date.parse("2026-03-26T18:00:00Z"),
        end: Date.parse("2026-03-26T19:00:00Z"),
        energyKwh: 1.5,
        direction: "import",
        quality: "actual",
        cost: 0.25,
        series: ["METER1"],
      },
    ]);
  });

  it("places the hour clocks repeat in autumn twice, daylight time first", () => {
    const xs = ["00:00", "01:00", "01:00", "02:00", "03:00"].map((t) => wall(`2025-11-02T${t}:00`));
    const points = xs.map((x, i) => ({ x, y: [1, 2, 3, 4, 5][i]! }));
    const r = decodePoll(answer(usageEntry([{ id: "M", flow: "FORWARD", points }])), { meterId: "m", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.intervals.map((i) => [iso(i.start), iso(i.end), i.energyKwh])).toEqual([
      ["2025-11-02T04:00:00.000Z", "2025-11-02T05:00:00.000Z", 1],
      ["2025-11-02T05:00:00.000Z", "2025-11-02T06:00:00.000Z", 2],
      ["2025-11-02T06:00:00.000Z", "2025-11-02T07:00:00.000Z", 3],
      ["2025-11-02T07:00:00.000Z", "2025-11-02T08:00:00.000Z", 4],
      ["2025-11-02T08:00:00.000Z", "2025-11-02T09:00:00.000Z", 5],
    ]);
    // A third point at the same wall time has nowhere to go.
    const three = decodePoll(
      answer(usageEntry([{ id: "M", flow: "FORWARD", points: [...points, { x: xs[1]!, y: 9 }] }])),
      { meterId: "m", timezone: ZONE },
    );
    expect(three.rejected).toEqual(['USAGE series "M" point 5: a second point for 2025-11-02T01:00 (wall clock)']);
    expect(totals(three.intervals).importKwh).toBe(15);
  });

  it("places 15-minute points across the repeated hour", () => {
    const local = ["00:45", "01:00", "01:15", "01:30", "01:45", "01:00", "01:15", "01:30", "01:45", "02:00"];
    const points = local.map((t, i) => ({ x: wall(`2025-11-02T${t}:00`), y: i + 1 }));
    const r = decodePoll(answer(usageEntry([{ id: "M", flow: "FORWARD", points }])), { meterId: "m", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    const starts = r.intervals.map((i) => i.start);
    // Ten consecutive quarter hours from 04:45Z to 07:00Z, no gap, no overlap.
    expect(starts).toEqual(Array.from({ length: 10 }, (_, i) => Date.parse("2025-11-02T04:45:00Z") + i * 900_000));
    expect(r.intervals.every((i) => i.end - i.start === 900_000)).toBe(true);
  });

  it("has no hour where clocks spring forward: a point there is added to the hour after it, an empty one dropped", () => {
    const base = ["00:00", "01:00", "03:00", "04:00"].map((t) => ({ x: wall(`2025-03-09T${t}:00`), y: 1 }));
    const plain = decodePoll(answer(usageEntry([{ id: "M", flow: "FORWARD", points: base }])), {
      meterId: "m",
      timezone: ZONE,
    });
    expect(plain.intervals.map((i) => iso(i.start))).toEqual([
      "2025-03-09T05:00:00.000Z",
      "2025-03-09T06:00:00.000Z",
      "2025-03-09T07:00:00.000Z",
      "2025-03-09T08:00:00.000Z",
    ]);
    const phantom = { x: wall("2025-03-09T02:00:00"), y: 0.5 };
    const withPhantom = decodePoll(answer(usageEntry([{ id: "M", flow: "FORWARD", points: [...base, phantom] }])), {
      meterId: "m",
      timezone: ZONE,
    });
    expect(withPhantom.rejected).toEqual([]);
    expect(withPhantom.intervals).toHaveLength(4);
    expect(withPhantom.intervals[2]).toMatchObject({ start: Date.parse("2025-03-09T07:00:00Z"), energyKwh: 1.5 });
    const empty = decodePoll(
      answer(usageEntry([{ id: "M", flow: "FORWARD", points: [...base, { ...phantom, y: 0 }] }])),
      { meterId: "m", timezone: ZONE },
    );
    expect(totals(empty.intervals).importKwh).toBe(4);
    expect(empty.intervals).toHaveLength(4);
  });

  it("adds a stray point off the hour to its hour, and reads estimated points", () => {
    const points = [...hourly("2025-06-01T10:00:00", [1, 2, 3]), { x: wall("2025-06-01T11:37:00"), y: 0.25 }];
    const entry = usageEntry([{ id: "M", flow: "FORWARD", points }], {
      estimatedSeries: { M: [{ x: wall("2025-06-01T12:00:00"), y: 3 }] },
    });
    const r = decodePoll(answer(entry), { meterId: "m", timezone: ZONE });
    expect(r.rejected).toEqual([]);
    expect(r.intervals.map((i) => [i.energyKwh, i.quality])).toEqual([
      [1, "actual"],
      [2.25, "actual"],
      [3, "estimated"],
    ]);
  });

  it("says what it cannot use, and reads the rest", () => {
    const entry = usageEntry([
      { id: "A", flow: "FORWARD", points: [...hourly("2025-06-01T00:00:00", [1, -2, 3]), { x: "noon", y: 1 }] },
      { id: "B", flow: "SIDEWAYS", points: hourly("2025-06-01T00:00:00", [1]) },
    ]);
    (entry.series as Record<string, unknown>[])[0]!.data = [
      ...((entry.series as Record<string, unknown>[])[0]!.data as unknown[]),
      { x: wall("2025-06-01T03:00:00"), y: "4.2" },
    ];
    const r = decodePoll(answer(entry), { meterId: "m", timezone: ZONE });
    expect(r.rejected).toEqual([
      'USAGE series "A" point 3: x "noon" is not a time',
      'USAGE series "A" point 4: y "4.2" is not a number',
      'USAGE series "B": unknown flowDirection "SIDEWAYS"',
      'USAGE series "A" point 1: negative usage -2 on a FORWARD meter',
    ]);
    expect(totals(r.intervals).importKwh).toBe(4);
    expect(decodePoll({ status: "PENDING" }, { meterId: "m" })).toMatchObject({
      status: "PENDING",
      intervals: [],
      rejected: ["the poll answered PENDING, not COMPLETE: it holds no usage yet"],
    });
    expect(decodePoll({ status: "COMPLETE" }, { meterId: "m" }).rejected).toEqual([
      "the answer has no data.ELECTRIC list",
    ]);
    expect(decodePoll([1, 2], { meterId: "m" }).rejected).toEqual(["the answer is not a JSON object"]);
  });
});

describe("meter2mqtt decode --format smarthub-json", () => {
  const ROOT = join(import.meta.dirname, "..");
  const cli = (args: string[], input?: string) =>
    spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: ROOT, input, encoding: "utf8" });

  it("prints one JSON line per interval, in the co-op's zone, and what it rejects on stderr", () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-smarthub-decode-"));
    const points = [...hourly("2025-11-02T00:00:00", [0.5, 0.75]), { x: wall("2025-11-02T01:00:00"), y: 1 }];
    const body = answer(
      usageEntry([{ id: "1N01", flow: "FORWARD", points: [...points, { x: wall("2025-11-02T02:00:00"), y: -1 }] }]),
    );
    writeFileSync(join(dir, "poll.json"), JSON.stringify(body));
    const r = cli(["decode", "--format", "smarthub-json", "--timezone", "America/Chicago", join(dir, "poll.json")]);
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    // Central time: midnight CDT is 05:00Z; the repeated 01:00 is 06:00Z then 07:00Z.
    expect(lines).toEqual([
      {
        series: ["1N01"],
        start: "2025-11-02T05:00:00.000Z",
        end: "2025-11-02T06:00:00.000Z",
        direction: "import",
        energy_kwh: 0.5,
        quality: "actual",
        cost: null,
      },
      {
        series: ["1N01"],
        start: "2025-11-02T06:00:00.000Z",
        end: "2025-11-02T07:00:00.000Z",
        direction: "import",
        energy_kwh: 0.75,
        quality: "actual",
        cost: null,
      },
      {
        series: ["1N01"],
        start: "2025-11-02T07:00:00.000Z",
        end: "2025-11-02T08:00:00.000Z",
        direction: "import",
        energy_kwh: 1,
        quality: "actual",
        cost: null,
      },
    ]);
    expect(r.stderr.trim().split("\n")).toEqual([
      `rejected ${join(dir, "poll.json")}: USAGE series "1N01" point 3: negative usage -1 on a FORWARD meter`,
    ]);
  });

  it("says so when given a saved HTML page", () => {
    const r = cli(["decode", "--format", "smarthub-json", "-"], "<!DOCTYPE html><html></html>");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^rejected -: not JSON \(an HTML page: save the poll's response, not the page\)/);
  });
});

describe("a poll answer file read as it comes", () => {
  /** The lines decode prints for an answer held in memory: intervals, then rejections. */
  const inMemory = (answer: unknown, timezone = ZONE): string[] => {
    const r = decodePoll(answer, { meterId: "decode", timezone });
    return [
      ...r.intervals.map((i) => JSON.stringify(intervalJson(i))),
      ...r.rejected.map((reason) => `rejected poll.json: ${reason}`),
    ];
  };
  /** The lines of the file decoder, given the text in chunks of `size` bytes. */
  const streamed = async (text: string | Buffer, size: number, timezone = ZONE): Promise<string[]> => {
    const bytes = Buffer.from(text);
    async function* chunks(): AsyncIterable<Buffer> {
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    }
    const out: string[] = [];
    for await (const item of smarthubJsonDecoder(chunks(), { source: "poll.json", timezone }))
      out.push(item.ok ? JSON.stringify(item.json) : `rejected ${item.reason}`);
    return out;
  };
  /** JSON with every object's names sorted, as the recordings were saved: status after data, type after series. */
  const sortedJson = (v: unknown): string =>
    JSON.stringify(v, (_k, x) =>
      typeof x === "object" && x !== null && !Array.isArray(x)
        ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)))
        : x,
    );

  it("gives the lines decodePoll gives for the portal's answers: NET with COST, FORWARD + RETURN, 60-minute, DST days", async () => {
    const cases: { opts: FakeSmarthubOptions; from: string; days: number }[] = [
      { opts: { flow: "NET", intervalMinutes: 15, price: 0.11 }, from: "2025-06-01T04:00:00Z", days: 3 },
      { opts: { flow: "RETURN", intervalMinutes: 15 }, from: "2025-07-01T04:00:00Z", days: 2 },
      { opts: { flow: "FORWARD", intervalMinutes: 60, price: 0.1 }, from: "2025-02-01T05:00:00Z", days: 4 },
      // Fall back (2 November 2025) and spring forward (9 March 2025), 15-minute NET with cost.
      { opts: { flow: "NET", intervalMinutes: 15, price: 0.12 }, from: "2025-11-01T04:00:00Z", days: 3 },
      { opts: { flow: "FORWARD", intervalMinutes: 60 }, from: "2025-03-08T05:00:00Z", days: 3 },
    ];
    for (const c of cases) {
      const portal = await startFakeSmarthub(c.opts);
      try {
        const start = Date.parse(c.from);
        const answer = portal.answer(start, start + c.days * 86_400_000);
        const expected = inMemory(answer);
        expect(expected.length).toBeGreaterThan(c.days * 20);
        expect(expected.filter((l) => l.startsWith("rejected"))).toEqual([]);
        // Chunks that end inside names, numbers and literals; names in another order.
        for (const size of [7, 4096]) expect(await streamed(JSON.stringify(answer), size)).toEqual(expected);
        expect(await streamed(sortedJson(answer), 1000)).toEqual(expected);
        expect(await streamed(JSON.stringify(answer, null, 2), 333)).toEqual(expected);
      } finally {
        await portal.close();
      }
    }
  });

  it("gives the same lines and rejections for odd answers", async () => {
    const bad = usageEntry([
      { id: "A", flow: "FORWARD", points: [...hourly("2025-06-01T00:00:00", [1, -2, 3]), { x: "noon", y: 1 }] },
      { id: "B", flow: "SIDEWAYS", points: hourly("2025-06-01T00:00:00", [1]) },
    ]);
    const series = (bad.series as Record<string, unknown>[])[0]!;
    series.data = [...(series.data as unknown[]), { x: wall("2025-06-01T03:00:00"), y: "4.2" }, 7, [1], { y: 2 }];
    const labels = {
      type: "USAGE",
      meters: [{ meterNumber: "METER1", flowDirection: "FORWARD" }],
      xToOrderedInterval: {
        "2026-03-26 14:00": { interval: { start: wall("2026-03-26T14:00:00"), end: wall("2026-03-26T15:00:00") } },
        "2026-03-26 15:00": { interval: { start: wall("2026-03-26T15:00:00"), end: wall("2026-03-26T16:00:00") } },
        '\u00e9t\u00e9 "1"': { interval: { start: 1 } },
      },
      estimatedSeries: { METER1: [{ x: "2026-03-26 15:00", y: 2 }] },
      series: [
        {
          meterNumber: "METER1",
          data: [
            { x: "2026-03-26 14:00", y: 1.5 },
            { x: "2026-03-26 15:00", y: null },
            { x: 'été "1"', y: 1 },
          ],
        },
      ],
    };
    const cost = {
      type: "COST",
      series: [{ meterNumber: "METER1", data: [{ x: "2026-03-26 14:00", y: 0.25 }] }],
      xToOrderedInterval: { "2026-03-26 14:00": { interval: { start: wall("2026-03-26T14:00:00") } } },
    };
    const answers: unknown[] = [
      answer(bad),
      answer(labels, cost),
      { data: { GAS: [], ELECTRIC: [labels, 5, null, { type: "DEMAND" }] }, status: "COMPLETE" },
      { status: "PENDING" },
      { status: "COMPLETE" },
      { status: "COMPLETE", data: { ELECTRIC: {} } },
      [1, 2],
      "COMPLETE",
    ];
    for (const a of answers) {
      const expected = inMemory(a);
      expect(await streamed(JSON.stringify(a), 5)).toEqual(expected);
      expect(await streamed(sortedJson(a), 64)).toEqual(expected);
    }
    // A name given twice counts with its last value, as JSON.parse reads it.
    const twice =
      '{"status":"PENDING","data":{"ELECTRIC":[{"type":"COST","type":"USAGE","timeFrame":"HOURLY","series":[],"series":[{"name":"M","data":[{"x":1748750400000,"y":9,"y":1}]}]}]},"status":"COMPLETE"}';
    expect(await streamed(twice, 3)).toEqual(inMemory(JSON.parse(twice)));
    expect((await streamed(twice, 3)).map((l) => JSON.parse(l).energy_kwh)).toEqual([1]);
  });

  it("says the file is not JSON, and where, for a page, a cut file or anything else; a BOM or blank file is fine", async () => {
    const good = JSON.stringify(
      answer(usageEntry([{ id: "M", flow: "FORWARD", points: hourly("2025-06-01T00:00:00", [1, 2]) }])),
    );
    expect(await streamed(`\uFEFF${good}\n`, 2)).toEqual(inMemory(JSON.parse(good)));
    expect(await streamed(" \n", 1)).toEqual([]);
    expect(await streamed("", 1)).toEqual([]);
    for (const size of [1, 10, 1 << 16]) {
      expect(await streamed(good.slice(0, 150), size)).toEqual([
        "rejected poll.json: not JSON: the file ends in the middle of the answer, after 150 bytes (cut off while saving?)",
      ]);
    }
    expect(await streamed(good.slice(0, -1), 50)).toEqual([
      `rejected poll.json: not JSON: the file ends in the middle of the answer, after ${good.length - 1} bytes (cut off while saving?)`,
    ]);
    expect(await streamed("<!DOCTYPE html><html><body>SmartHub</body></html>", 8)).toEqual([
      `rejected poll.json: not JSON (an HTML page: save the poll's response, not the page): unexpected "<" at byte 0`,
    ]);
    const wrong: [string, string][] = [
      [`${good}x`, `more after the end of the answer at byte ${good.length}`],
      ['{"status":"COMPLETE",}', "expected a name in quotes at byte 21"],
      ['{"status" "COMPLETE"}', 'expected ":" at byte 10'],
      ['{"data":[1 2]}', 'expected "," or "]" at byte 11'],
      ['{"data":01}', 'unexpected "1" at byte 9'],
      ['{"data":1.}', "a number without digits after its point at byte 10"],
      ['{"data":tru}', 'unexpected "}" at byte 11'],
      ['{"data":"a\\qb"}', "bad escape in a string at byte 10"],
      ['{"data":"a\tb"}', "a control character in a string at byte 10"],
      ["{'data':1}", "expected a name in quotes at byte 1"],
    ];
    for (const [text, where] of wrong) {
      expect(() => JSON.parse(text)).toThrow();
      expect(await streamed(text, 4)).toEqual([`rejected poll.json: not JSON: ${where}`]);
    }
  });
  it("reads any text as JSON.parse does: the same lines when it parses, one 'not JSON' line when it does not", async () => {
    const good = JSON.stringify(
      answer(
        usageEntry(
          [
            { id: "N", flow: "NET", net: true, points: hourly("2025-06-01T00:00:00", [1.5, -2, 0.25, null as never]) },
            { id: "F", flow: "FORWARD", points: hourly("2025-06-01T00:00:00", [1, 2, 3, 4]) },
          ],
          { estimatedSeries: { N: [{ x: wall("2025-06-01T01:00:00") }] }, note: 'caf\u00e9 "x"\n' },
        ),
      ),
    );
    const bytes = Buffer.from(good);
    const edits = fc.oneof(
      fc.record({ cut: fc.nat(bytes.length) }),
      fc.record({
        at: fc.nat(bytes.length - 1),
        byte: fc.constantFrom(...Buffer.from('{}[],:"\\ 0123456789.eE+-tfnul<x\t')),
      }),
      fc.record({ drop: fc.nat(bytes.length - 1) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(edits, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 97 }),
        async (list, size) => {
          let b = Buffer.from(bytes);
          for (const e of list) {
            if ("cut" in e) b = b.subarray(0, e.cut);
            else if ("drop" in e) b = Buffer.concat([b.subarray(0, e.drop), b.subarray(e.drop + 1)]);
            else if (e.at < b.length) b[e.at] = e.byte;
          }
          let parsed: { ok: true; value: unknown } | { ok: false };
          try {
            parsed = { ok: true, value: JSON.parse(b.toString("utf8")) };
          } catch {
            parsed = { ok: false };
          }
          const lines = await streamed(b, size);
          if (b.toString("utf8").trim() === "") expect(lines).toEqual([]);
          else if (parsed.ok) expect(lines).toEqual(inMemory(parsed.value));
          else
            expect(lines).toEqual([
              expect.stringMatching(
                /^rejected poll\.json: not JSON: .+ (at byte \d+|after \d+ bytes \(cut off while saving\?\))$/,
              ),
            ]);
        },
      ),
      { numRuns: 300, seed: 13 },
    );
  });
  const SHARED = join(import.meta.dirname, "..", "..", "shared", "data", "smarthub");
  it.skipIf(!existsSync(SHARED))(
    "gives the lines decodePoll gives for the recorded answers in ../shared/data",
    async () => {
      const files = readdirSync(SHARED).filter((f) => /poll|SYNTHETIC/.test(f) && f.endsWith(".json"));
      expect(files.length).toBeGreaterThan(3);
      for (const f of files) {
        const text = readFileSync(join(SHARED, f), "utf8");
        const expected = inMemory(JSON.parse(text));
        expect(await streamed(text, 1000), f).toEqual(expected);
      }
    },
  );
});
