/**
 * Hourly energy into Home Assistant's long-term statistics, against a local websocket server that enforces HA's
 * rules (test/helpers/fake-ha.ts), from a real archive.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive } from "../src/outputs/archive/index.js";
import { archiveStatistics, HaClient, StatisticsOutput } from "../src/outputs/statistics/index.js";
import { metadata, STATISTIC_ID, statisticId, syncStatistic } from "../src/outputs/statistics/sync.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { ManualClock } from "../src/util/clock.js";
import { type FakeHa, type StatRow, startFakeHa } from "./helpers/fake-ha.js";
import { recordingLog } from "./helpers/log.js";
import { expectedTotals, type Row, smtCsv, smtDay } from "./helpers/smt.js";

const ZONE = "America/Chicago";

/** What HA should hold after importing `days` from scratch: running sums per UTC hour, in Wh. */
function freshSums(days: { day: string; rows: Row[] }[], dir: "import" | "export" = "import", base = 0) {
  const { hourly } = expectedTotals(days);
  let sum = base;
  return [...hourly.keys()].sort().map((hour) => {
    const state = hourly.get(hour)![dir];
    sum += state;
    return { start: Date.parse(hour), state: state / 1000, sum: sum / 1000 };
  });
}

const round = (rows: StatRow[]) =>
  rows.map((r) => ({ start: r.start, state: r.state, sum: Math.round(r.sum! * 1e6) / 1e6 }));

describe("HA long-term statistics", () => {
  let dir: string;
  let ha: FakeHa;
  const archives: Archive[] = [];

  /** A fresh archive with the given days of one meter in it. */
  async function archiveWith(meterId: string, days: { day: string; rows: Row[]; revised?: string }[]) {
    const archive = new Archive({
      enabled: true,
      path: join(dir, `${meterId}-${archives.length}.sqlite`),
      interval: 0,
    });
    archives.push(archive);
    await archive.start();
    const pipeline = new IntervalPipeline(archive, new Bus());
    const ingest = async (rows: Row[], at = Date.parse("2025-07-01T00:00:00Z")) =>
      pipeline.ingest({
        meterId,
        timezone: ZONE,
        intervals: parseSmtCsv(smtCsv(rows), { file: "t", meterId }).intervals,
        receivedAt: at,
      });
    for (const d of days) await ingest(d.rows);
    return { archive, store: archiveStatistics(archive), ingest };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-stats-"));
    ha = await startFakeHa();
  });
  afterEach(() => {
    ha.commands.length = 0;
    ha.errors.length = 0;
  });
  afterAll(async () => {
    for (const a of archives) await a.stop();
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("imports hourly sums on the hour with HA's metadata, and nothing a second time", async () => {
    const days = ["2024-11-02", "2024-11-03", "2024-11-04"].map((day) => ({ day, rows: smtDay({ day }) }));
    const { store } = await archiveWith("texas", days);
    const client = await HaClient.connect(ha.url, ha.token);
    const target = { meterId: "texas", direction: "import" as const, name: "Texas energy import" };
    const r = await syncStatistic(store, client, target, Date.now);
    expect(ha.errors).toEqual([]);
    expect(r).toMatchObject({ statisticId: "meter2mqtt:texas_energy_import", sent: 73, base: 0 });
    const id = "meter2mqtt:texas_energy_import";
    expect(ha.metadata(id)).toEqual({
      has_sum: true,
      name: "Texas energy import",
      source: "meter2mqtt",
      statistic_id: id,
      unit_of_measurement: "kWh",
      mean_type: 0,
      unit_class: "energy",
    });
    expect(round(ha.rows(id))).toEqual(freshSums(days));
    const imported = ha.commands.filter((c) => c.type === "recorder/import_statistics");
    expect((imported[0]!.stats as { start: string }[])[0]!.start).toBe("2024-11-02T05:00:00+00:00");

    const again = await syncStatistic(store, client, target, Date.now);
    expect(again.sent).toBe(0);
    expect(ha.commands.filter((c) => c.type === "recorder/import_statistics")).toHaveLength(1);
    await client.close();
  });

  it("after a revision re-imports from the first changed hour, giving the sums a fresh import of the revised data gives", async () => {
    const days = ["2025-03-08", "2025-03-09", "2025-03-10"].map((day) => ({
      day,
      rows: smtDay({ day, revision: "03/11/2025 08:00:00" }),
    }));
    const { store, ingest } = await archiveWith("rev", days);
    const client = await HaClient.connect(ha.url, ha.token);
    const target = { meterId: "rev", direction: "import" as const, name: "rev" };
    await syncStatistic(store, client, target, Date.now);
    const id = statisticId("rev", "import");
    const before = ha.rows(id);

    // The spring-forward day revised two days later: slot 40 (10:00 CDT = 15:00Z) and slot 60.
    const revised = smtDay({
      day: "2025-03-09",
      revision: "03/12/2025 09:00:00",
      override: (_c, i) => (i === 40 ? "2.5" : i === 60 ? ".001" : undefined),
    });
    await ingest(revised, Date.parse("2025-03-12T17:00:00Z"));
    const r = await syncStatistic(store, client, target, Date.now);
    expect(r.from).toBe(Date.parse("2025-03-09T15:00:00Z"));
    // From 15:00Z on the 9th to its local end (05:00Z on the 10th, CDT from 02:00), then the 24 hours of the 10th.
    expect(r.sent).toBe(14 + 24);
    const fresh = freshSums([days[0]!, { day: "2025-03-09", rows: revised }, days[2]!]);
    expect(round(ha.rows(id))).toEqual(fresh);
    // Hours before the revision were not touched.
    expect(ha.rows(id).filter((x) => x.start < r.from!)).toEqual(before.filter((x) => x.start < r.from!));
    await client.close();
  });

  it("continues from the sum HA already holds for the hour before", async () => {
    const id = statisticId("cont", "import");
    const last = Date.parse("2025-05-01T04:00:00Z");
    ha.seed(id, { source: "meter2mqtt" }, [
      { start: last - 3_600_000, state: 1, sum: 1200 },
      { start: last, state: 0.5, sum: 1234.5 },
    ]);
    const days = [{ day: "2025-05-01", rows: smtDay({ day: "2025-05-01" }) }];
    const { store } = await archiveWith("cont", days);
    const client = await HaClient.connect(ha.url, ha.token);
    const r = await syncStatistic(store, client, { meterId: "cont", direction: "import", name: "c" }, Date.now);
    expect(r.base).toBe(1234.5);
    expect(round(ha.rows(id).filter((x) => x.start > last))).toEqual(freshSums(days, "import", 1234500));
    await client.close();
  });

  it("sends again what HA lost (a database restored from an older backup)", async () => {
    const days = ["2025-08-01", "2025-08-02"].map((day) => ({ day, rows: smtDay({ day }) }));
    const { store } = await archiveWith("lost", days);
    const client = await HaClient.connect(ha.url, ha.token);
    const target = { meterId: "lost", direction: "import" as const, name: "l" };
    await syncStatistic(store, client, target, Date.now);
    const id = statisticId("lost", "import");
    const cut = Date.parse("2025-08-02T10:00:00Z");
    ha.truncate(id, cut);
    const r = await syncStatistic(store, client, target, Date.now);
    expect(r.from).toBe(cut);
    expect(round(ha.rows(id))).toEqual(freshSums(days));
    await client.close();
  });

  it("exports go to their own statistic; the output syncs every meter at start and after new intervals", async () => {
    const days = [
      { day: "2025-06-15", rows: smtDay({ day: "2025-06-15", channels: ["Consumption", "Surplus Generation"] }) },
    ];
    const { store } = await archiveWith("solar", days);
    const clock = new ManualClock(Date.parse("2025-06-16T18:00:00Z"));
    const { log } = recordingLog();
    const out = new StatisticsOutput({ url: ha.url, token: ha.token }, store, [{ id: "solar", name: "Solar house" }], {
      clock,
      log,
    });
    const results = await out.sync();
    expect(results.map((x) => [x.statisticId, x.sent])).toEqual([
      ["meter2mqtt:solar_energy_import", 24],
      ["meter2mqtt:solar_energy_export", 24],
    ]);
    expect(ha.metadata("meter2mqtt:solar_energy_export")).toMatchObject({ name: "Solar house energy export" });
    expect(round(ha.rows("meter2mqtt:solar_energy_export"))).toEqual(freshSums(days, "export"));
    await out.stop();
  });

  it("speaks the older metadata (has_mean, no mean_type or unit_class) to HA before 2025.11", async () => {
    const old = await startFakeHa({ version: "2025.6.3" });
    try {
      const { store } = await archiveWith("old", [{ day: "2025-05-05", rows: smtDay({ day: "2025-05-05" }) }]);
      const client = await HaClient.connect(old.url, old.token);
      expect(client.haVersion).toBe("2025.6.3");
      const r = await syncStatistic(store, client, { meterId: "old", direction: "import", name: "o" }, Date.now);
      expect(old.errors).toEqual([]);
      expect(r.sent).toBe(24);
      expect(old.metadata("meter2mqtt:old_energy_import")).toMatchObject({ has_mean: false, has_sum: true });
      await client.close();
    } finally {
      await old.close();
    }
  });

  it("the stand-in refuses what HA refuses, so passing it means something", async () => {
    const client = await HaClient.connect(ha.url, ha.token);
    const meta = metadata({ meterId: "x", direction: "import", name: "x" }, ha.version);
    const row = { start: "2025-01-01T05:00:00+00:00", state: 1, sum: 1 };
    const attempt = (m: Record<string, unknown>) =>
      client.command(m).then(
        () => "ok",
        (e: Error & { code: string }) => `${e.code}: ${e.message}`,
      );
    expect(await attempt({ type: "recorder/import_statistics", metadata: meta, stats: [row] })).toBe("ok");
    expect(
      await attempt({ type: "recorder/import_statistics", metadata: { ...meta, source: "recorder" }, stats: [row] }),
    ).toBe("home_assistant_error: Invalid source");
    expect(
      await attempt({
        type: "recorder/import_statistics",
        metadata: { ...meta, statistic_id: "meter2mqtt:_x" },
        stats: [row],
      }),
    ).toBe("home_assistant_error: Invalid statistic_id");
    expect(
      await attempt({
        type: "recorder/import_statistics",
        metadata: meta,
        stats: [{ ...row, start: "2025-01-01T05:15:00+00:00" }],
      }),
    ).toBe("home_assistant_error: Invalid timestamp");
    expect(
      await attempt({
        type: "recorder/import_statistics",
        metadata: meta,
        stats: [{ ...row, start: "2025-01-01T05:00:00" }],
      }),
    ).toBe("home_assistant_error: Naive timestamp");
    const { unit_class: _u, ...noClass } = meta;
    expect(await attempt({ type: "recorder/import_statistics", metadata: noClass, stats: [row] })).toMatch(
      /^invalid_format: required key/,
    );
    expect(
      await attempt({ type: "recorder/import_statistics", metadata: { ...meta, extra: 1 }, stats: [row] }),
    ).toMatch(/^invalid_format: extra keys/);
    await client.close();
    expect(STATISTIC_ID.test(statisticId("__odd__id_", "import"))).toBe(true);
    expect(statisticId("__odd__id_", "import")).toBe("meter2mqtt:odd_id_energy_import");
  });

  it("a wrong token fails the handshake with a message that does not repeat the token", async () => {
    const failures = ha.authFailures;
    const err = await HaClient.connect(ha.url, "wrong-token-123").then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/refused the access token/);
    expect(err?.message).not.toContain("wrong-token-123");
    expect(ha.authFailures).toBe(failures + 1);
  });

  it("the output retries after HA was unreachable and logs the failure once", async () => {
    const { store } = await archiveWith("retry", [{ day: "2025-09-01", rows: smtDay({ day: "2025-09-01" }) }]);
    const clock = new ManualClock(Date.parse("2025-09-02T18:00:00Z"));
    const rec = recordingLog();
    const down = `ws://127.0.0.1:1/api/websocket`;
    const out = new StatisticsOutput({ url: down, token: "t0ken-never-logged" }, store, [{ id: "retry" }], {
      clock,
      log: rec.log,
    });
    out.start();
    clock.advance(0);
    await waitFor(() => rec.at("error").length === 1);
    clock.advance(60_000);
    await waitFor(() => rec.at("error").length >= 1 && !(out as unknown as { running: unknown }).running);
    expect(rec.at("error")).toHaveLength(1);
    expect(rec.lines.map((l) => l.text).join("\n")).not.toContain("t0ken-never-logged");
    await out.stop();
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met");
    await new Promise((r) => setTimeout(r, 10));
  }
}
