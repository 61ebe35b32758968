/**
 * Cost statistics of an interval meter without utility cost (Smart Meter Texas) from its tariff, into Home
 * Assistant's long-term statistics (the local server that enforces HA's rules, test/helpers/fake-ha.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DateTime } from "luxon";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bus } from "../src/bus.js";
import { parseConfig } from "../src/config/load.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import { Archive } from "../src/outputs/archive/index.js";
import { archiveStatistics, StatisticsOutput } from "../src/outputs/statistics/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { calendarMeters } from "../src/tariffs/index.js";
import { withTariffCost } from "../src/tariffs/statistics.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { recordingLog } from "./helpers/log.js";
import { smtCsv, smtDay, wh } from "./helpers/smt.js";

const CHI = "America/Chicago";
const H = 3_600_000;

describe("cost statistics from a tariff", () => {
  let dir: string;
  let ha: FakeHa;
  let archive: Archive;
  const rows = ["2024-11-02", "2024-11-03"].flatMap((day) => smtDay({ day }));
  const config = parseConfig({
    meters: [{ id: "texas", name: "Texas", type: "smt", folder: "/tmp/none", timezone: CHI }],
    tariffs: {
      tx: {
        meters: ["texas"],
        currency: "USD",
        import: [{ from: "14:00", to: "20:00", price: 0.25 }, { price: 0.11 }],
        daily_charge: 0.33,
      },
    },
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-tariff-stats-"));
    ha = await startFakeHa();
    archive = new Archive({ enabled: true, path: join(dir, "a.sqlite"), interval: 0 });
    await archive.start();
    await new IntervalPipeline(archive, new Bus()).ingest({
      meterId: "texas",
      timezone: CHI,
      intervals: parseSmtCsv(smtCsv(rows), { file: "t", meterId: "texas" }).intervals,
      receivedAt: Date.parse("2024-11-04T15:00:00Z"),
    });
  });
  afterAll(async () => {
    await archive.stop();
    await ha.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends meter2mqtt:texas_cost in USD: each hour's import at its prices plus the hour's share of the day's charge", async () => {
    const store = withTariffCost(archiveStatistics(archive), archive, calendarMeters(config), () =>
      Date.parse("2024-11-04T15:00:00Z"),
    );
    const out = new StatisticsOutput({ url: ha.url, token: ha.token }, store, [{ id: "texas", currency: "USD" }], {
      log: recordingLog().log,
    });
    const results = await out.sync(["texas"]);
    expect(ha.errors).toEqual([]);
    expect(results.map((r) => [r.statisticId, r.sent])).toEqual([
      ["meter2mqtt:texas_energy_import", 49],
      ["meter2mqtt:texas_energy_export", 0],
      ["meter2mqtt:texas_cost", 49],
    ]);
    expect(ha.metadata("meter2mqtt:texas_cost")).toMatchObject({ unit_of_measurement: "USD", unit_class: null });

    // By hand: per UTC hour, the import of its intervals at the local hour's price, and 0.33 spread over the
    // local day's 24 or 25 hours.
    const hourly = new Map<number, number>();
    for (const r of rows) {
      if (r.start === null || r.kwh === "") continue;
      const hour = Math.floor(r.start / H) * H;
      const l = DateTime.fromMillis(r.start, { zone: CHI });
      const price = l.hour >= 14 && l.hour < 20 ? 0.25 : 0.11;
      hourly.set(hour, (hourly.get(hour) ?? 0) + (wh(r.kwh) / 1000) * price);
    }
    let sum = 0;
    const expected = [...hourly.keys()].sort().map((hour) => {
      const day = DateTime.fromMillis(hour, { zone: CHI }).toISODate();
      const state = (hourly.get(hour) as number) + 0.33 / (day === "2024-11-03" ? 25 : 24);
      sum += state;
      return { start: hour, state, sum };
    });
    const got = ha.rows("meter2mqtt:texas_cost");
    expect(got).toHaveLength(expected.length);
    got.forEach((g, i) => {
      expect(g.start).toBe(expected[i]?.start);
      expect(g.state).toBeCloseTo(expected[i]?.state as number, 6);
      expect(g.sum).toBeCloseTo(expected[i]?.sum as number, 5);
    });
    // Two whole days: the charges add up to two days' worth.
    expect(sum - [...hourly.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(0.66, 9);
  });
});
