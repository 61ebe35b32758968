/**
 * The SmartHub source end to end in one process: the local portal (test/helpers/fake-smarthub.ts) → the source on a
 * manual clock → a real SQLite archive → HA's long-term statistics through the enforcing stand-in
 * (test/helpers/fake-ha.ts). The archive and HA must hold exactly the energy and cost the portal answered, across
 * the DST changes, for FORWARD, NET and RETURN meters, with and without COST; revised data replace old; the schedule
 * and the failures behave as configured.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { type SmarthubMeterConfig, SmarthubMeterSchema } from "../src/config/schema.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import type { MeterInfo, Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { archiveStatistics, StatisticsOutput } from "../src/outputs/statistics/index.js";
import { SmarthubSource } from "../src/sources/smarthub/index.js";
import { ManualClock } from "../src/util/clock.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { type FakeSmarthub, type FakeSmarthubOptions, startFakeSmarthub } from "./helpers/fake-smarthub.js";
import { recordingLog } from "./helpers/log.js";

const HOUR = 3_600_000;
const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const FAST_CLIENT = { pollDelaysMs: [5, 5, 5], retryDelaysMs: [5], sleep: realSleep };
const round6 = (v: number) => Math.round(v * 1e6) / 1e6;

describe("SmartHub source", () => {
  let dir: string;
  let ha: FakeHa;
  const cleanup: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-smarthub-"));
    ha = await startFakeHa();
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function rig(id: string, now: string, portal: FakeSmarthubOptions, meter: Partial<SmarthubMeterConfig> = {}) {
    const clock = new ManualClock(Date.parse(now));
    const fake = await startFakeSmarthub({ now: () => clock.now(), ...portal });
    const path = join(dir, `${id}.sqlite`);
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    const bus = new Bus();
    const readings: Reading[] = [];
    const infos: MeterInfo[] = [];
    bus.subscribe("test", "reading", (r) => void readings.push(r));
    bus.subscribe("test", "meterInfo", (i) => void infos.push(i));
    const pipeline = new IntervalPipeline(archive, bus, { clock });
    const cfg = SmarthubMeterSchema.parse({
      id,
      type: "smarthub",
      base_url: fake.url,
      username: "member@example.com",
      password: "correct horse battery",
      ...meter,
    });
    const rec = recordingLog();
    const sources: SmarthubSource[] = [];
    /** A source as the bridge starts it; a second one is the bridge started again. */
    const makeSource = () => {
      const s = new SmarthubSource(cfg, bus, {
        clock,
        intervals: pipeline,
        log: rec.log,
        client: FAST_CLIENT,
        retryDelaysMs: [60_000, 120_000],
      });
      sources.push(s);
      return s;
    };
    const source = makeSource();
    const statistics = new StatisticsOutput({ url: ha.url, token: ha.token }, archiveStatistics(archive), [
      { id, name: id, currency: cfg.currency },
    ]);
    cleanup.push(async () => {
      for (const s of sources) await s.stop();
      await archive.stop();
      await fake.close();
    });
    const db = () => openArchiveReadOnly(path);
    return { clock, fake, archive, bus, source, makeSource, statistics, readings, infos, rec, db };
  }

  /** The archive's current intervals against what the portal served, one by one. */
  function expectArchiveHoldsServed(
    path: () => ReturnType<typeof openArchiveReadOnly>,
    meterId: string,
    fake: FakeSmarthub,
  ) {
    const d = path();
    try {
      const rows = d
        .prepare("SELECT start, end, direction, energy_kwh AS kwh, cost FROM intervals_current WHERE meter_id = ?")
        .all(meterId) as { start: string; end: string; direction: string; kwh: number; cost: number | null }[];
      const got = new Map(rows.map((r) => [`${Date.parse(r.start)}|${r.direction}`, r]));
      const want = fake.expected();
      expect(got.size).toBe(want.size);
      for (const [key, w] of want) {
        const g = got.get(key);
        expect(g, key).toBeDefined();
        expect([Date.parse(g!.end), g!.kwh, g!.cost], key).toEqual([w.end, w.kwh, w.cost ?? null]);
      }
    } finally {
      d.close();
    }
  }

  /** HA's rows of the three statistics against the portal's hourly sums: state per hour, running sum. */
  function expectHaHoldsServed(meterId: string, fake: FakeSmarthub, withCost: boolean) {
    const hourly = [...fake.hourly()].sort((a, b) => a[0] - b[0]);
    for (const [dir, id] of [
      ["import", `meter2mqtt:${meterId}_energy_import`],
      ["export", `meter2mqtt:${meterId}_energy_export`],
      ["cost", `meter2mqtt:${meterId}_cost`],
    ] as const) {
      const present = dir === "cost" ? withCost : [...fake.expected().values()].some((s) => s.direction === dir);
      if (!present) {
        expect(ha.metadata(id), id).toBeUndefined();
        continue;
      }
      let sum = 0;
      const want = hourly.map(([start, v]) => {
        sum = round6(sum + v[dir]);
        return { start, state: v[dir], sum };
      });
      const got = ha.rows(id).map((r) => ({ start: r.start, state: round6(r.state!), sum: round6(r.sum!) }));
      expect(got, id).toEqual(want);
    }
  }

  const cases = [
    {
      name: "FORWARD, hourly, with COST, across the autumn change",
      id: "coop_fwd",
      now: "2025-11-04T17:00:00Z",
      portal: { flow: "FORWARD", price: 0.1234 } as FakeSmarthubOptions,
      // Nov 1 to Nov 4 (till 12:00 EST): 24 + 25 + 24 + 12 hours.
      intervals: 85,
    },
    {
      name: "NET, 15-minute, with COST (credits on export), across the spring change",
      id: "coop_net",
      now: "2025-03-11T16:00:00Z",
      portal: { flow: "NET", intervalMinutes: 15, price: 0.11 } as FakeSmarthubOptions,
      // Mar 8 to Mar 11 (till 12:00 EDT): (24 + 23 + 24 + 12) hours × 4 quarters × 2 directions.
      intervals: 83 * 4 * 2,
    },
    {
      name: "RETURN, hourly, without COST",
      id: "coop_ret",
      now: "2025-07-20T16:00:00Z",
      portal: { flow: "RETURN" } as FakeSmarthubOptions,
      intervals: (24 * 3 + 12) * 2,
    },
  ];

  for (const c of cases)
    it(`stores exactly what the portal answered and sends it to HA: ${c.name}`, async () => {
      const r = await rig(c.id, c.now, c.portal);
      r.source.start();
      r.clock.advance(0);
      const report = await r.source.fetchNow();
      expect(report).toMatchObject({ windows: 1, intervals: c.intervals, revisions: c.intervals, rejected: 0 });
      expect(report.error).toBeUndefined();
      // The first answer of every poll is PENDING, as at the real portal.
      expect(r.fake.polls.map((p) => p.status)).toEqual(["PENDING", "COMPLETE"]);
      expectArchiveHoldsServed(r.db, c.id, r.fake);
      await r.statistics.sync();
      expectHaHoldsServed(c.id, r.fake, c.portal.price !== undefined);
      const cost = ha.metadata(`meter2mqtt:${c.id}_cost`);
      if (c.portal.price !== undefined)
        expect(cost).toEqual({
          has_sum: true,
          name: `${c.id} cost`,
          source: "meter2mqtt",
          statistic_id: `meter2mqtt:${c.id}_cost`,
          unit_of_measurement: "USD",
          mean_type: 0,
          unit_class: null,
        });
      expect(r.infos.at(-1)).toMatchObject({ meterId: c.id, manufacturer: "NISC SmartHub" });
      expect(r.readings.at(-1)!.values.import_status).toBe("ok");
      expect(ha.errors).toEqual([]);
    });

  it("reads the last days again at each fetch: revised data replace old, unchanged data are not stored twice", async () => {
    const r = await rig("coop_rev", "2025-11-04T17:00:00Z", { price: 0.1 }, { fetch_every_hours: 6, refetch_days: 3 });
    r.source.start();
    r.clock.advance(0);
    await r.source.fetchNow();
    await r.statistics.sync();
    const before = r.fake.polls.length;
    // Six hours later, nothing new was asked for in between; then the co-op revises Nov 3 from 05:00Z on.
    r.clock.advance(6 * HOUR - 1);
    expect(r.fake.polls).toHaveLength(before);
    r.fake.revision = { from: Date.parse("2025-11-03T05:00:00Z"), delta: 0.25 };
    r.clock.advance(1);
    const report = await r.source.fetchNow();
    expect(report.error).toBeUndefined();
    // 12:00 to 18:00 EST are new (6 hours), and the revised 24 + 12 hours are stored as new revisions.
    expect(report.intervals).toBe(85 + 6);
    expect(report.revisions).toBe(24 + 12 + 6);
    expectArchiveHoldsServed(r.db, "coop_rev", r.fake);
    const d = r.db();
    const counts = d
      .prepare(
        "SELECT revisions, count(*) AS n FROM intervals_current WHERE meter_id = 'coop_rev' GROUP BY revisions ORDER BY revisions",
      )
      .all();
    d.close();
    expect(counts).toEqual([
      { revisions: 1, n: 85 - 36 + 6 },
      { revisions: 2, n: 36 },
    ]);
    await r.statistics.sync();
    expectHaHoldsServed("coop_rev", r.fake, true);
    // The day summary for MQTT: the latest full day (Nov 3), as revised.
    const summary = r.readings.filter((x) => x.values.last_day !== undefined).at(-1)!;
    const nov3 = [...r.fake.expected().values()]
      .filter((s) => s.start >= Date.parse("2025-11-03T05:00:00Z") && s.start < Date.parse("2025-11-04T05:00:00Z"))
      .reduce((a, s) => a + s.kwh, 0);
    expect(summary.values.last_day).toBe("2025-11-03");
    expect(summary.values.energy_import_last_day_kwh).toBeCloseTo(nov3, 6);
  });

  it("keeps the windows fetched before a failure, retries with a growing delay, and goes on from there", async () => {
    const r = await rig("coop_gap", "2025-05-01T16:00:00Z", {}, { refetch_days: 1 });
    r.source.start();
    r.clock.advance(0);
    await r.source.fetchNow();
    await r.source.stop();
    // Sixty days later the bridge starts again: the gap is two windows; the second meets a maintenance page.
    r.clock.advance(60 * 24 * HOUR);
    const source = r.makeSource();
    const secondWindow = Date.parse("2025-06-15T04:00:00Z");
    r.fake.onPoll = (p) => (p.start === secondWindow ? "html" : undefined);
    source.start();
    r.clock.advance(0);
    const failed = await source.fetchNow();
    expect(failed).toMatchObject({ windows: 1, from: "2025-05-01", to: "2025-06-30", errorKind: "unavailable" });
    expect(failed.error).toMatch(/^poll: the portal answered an HTML page \(HTTP 503\) instead of JSON/);
    expect(r.readings.at(-1)!.values.import_status).toMatch(/^error: poll: the portal answered an HTML page/);
    const d = r.db();
    const newest = d.prepare("SELECT max(start) AS s FROM intervals_current WHERE meter_id = 'coop_gap'").get() as {
      s: string;
    };
    d.close();
    // From the newest stored day on: the first window (May 1 to Jun 14) is in.
    expect(newest.s).toBe("2025-06-15T03:00:00.000Z");
    // Retried after the first delay, not before.
    r.fake.onPoll = undefined;
    const polls = r.fake.polls.length;
    r.clock.advance(59_999);
    expect(r.fake.polls).toHaveLength(polls);
    r.clock.advance(1);
    const ok = await source.fetchNow();
    expect(ok.error).toBeUndefined();
    expectArchiveHoldsServed(r.db, "coop_gap", r.fake);
    expect(r.rec.at("info")).toContain("fetching works again");
  });

  it("does not retry a refused login before the next regular fetch", async () => {
    const r = await rig(
      "coop_auth",
      "2025-05-01T16:00:00Z",
      { password: "changed on the portal" },
      { fetch_every_hours: 4 },
    );
    r.source.start();
    r.clock.advance(0);
    const report = await r.source.fetchNow();
    expect(report.errorKind).toBe("auth");
    expect(report.error).toMatch(/^login refused by http:\/\/127\.0\.0\.1:\d+: "Your data could not be verified/);
    expect(report.error).not.toContain("correct horse battery");
    expect(r.fake.logins).toHaveLength(1);
    r.clock.advance(4 * HOUR - 1);
    expect(r.fake.logins).toHaveLength(1);
    r.clock.advance(1);
    await r.source.fetchNow();
    expect(r.fake.logins).toHaveLength(2);
    // Logged once, not at every attempt.
    expect(r.rec.at("error")).toHaveLength(1);
  });
});
