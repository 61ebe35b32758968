/**
 * What pricing costs on the path from the meter to MQTT: the bus step that adds the cost totals to each reading,
 * with a fixed time-of-use tariff and with a dynamic one whose source sends a price every second (its history at
 * the most it keeps), and the quarter-hour round that settles 100 meters' dynamic prices. Asserts nothing.
 */
import { parseConfig } from "../src/config/load.js";
import { TariffService } from "../src/tariffs/index.js";
import { ManualClock } from "../src/util/clock.js";

const START = Date.UTC(2026, 10, 21, 0, 0, 0);

function config(tariff: Record<string, unknown>, meters = 1) {
  const ids = Array.from({ length: meters }, (_, i) => `m${i}`);
  return parseConfig({
    archive: { enabled: false },
    homeassistant: { url: "ws://127.0.0.1:1/api/websocket", token: "bench" },
    meters: ids.map((id) => ({ id, type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" })),
    tariffs: { t: { meters: ids, currency: "EUR", ...tariff } },
  });
}

/** Microseconds per reading through the coster, a reading a second for a day. */
function perReading(tariffs: TariffService, clock: ManualClock, everySecond?: (t: number) => void): number {
  const coster = tariffs.coster();
  let kwh = 1000;
  const n = 86_400;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    everySecond?.(clock.now());
    kwh += 0.0002;
    coster({ meterId: "m0", time: clock.now(), values: { energy_import_kwh: kwh, power_import_w: 720 } });
    clock.advance(1000);
  }
  return ((performance.now() - t0) * 1000) / n;
}

export function benchTariffs(): Record<string, string> {
  const out: Record<string, string> = {};
  const silent = { log: { debug() {}, info() {}, warn() {}, error() {}, child: () => silent.log } };
  {
    const clock = new ManualClock(START);
    const tariffs = new TariffService(
      config({
        import: [{ from: "07:00", to: "23:00", days: ["mon", "tue", "wed", "thu", "fri"], price: 0.3 }, { price: 0.2 }],
      }),
      { clock, ...silent },
    );
    out["cost of a reading, time-of-use tariff"] = `${perReading(tariffs, clock).toFixed(2)} µs`;
  }
  {
    const clock = new ManualClock(START);
    const tariffs = new TariffService(config({ type: "dynamic", import: { mqtt: { topic: "p" }, fallback: 0.3 } }), {
      clock,
      ...silent,
    });
    const feed = tariffs.feeds[0]?.feed;
    tariffs.startPrices(undefined);
    const us = perReading(tariffs, clock, (t) => feed?.offer(0.2 + ((t / 1000) % 7) / 100, t));
    out["cost of a reading, dynamic price sent every second"] = `${us.toFixed(2)} µs (reading and price message)`;
    void tariffs.stop();
  }
  {
    const clock = new ManualClock(START);
    const tariffs = new TariffService(
      config(
        {
          type: "dynamic",
          import: { entity: "sensor.x", fallback: 0.3 },
          export: { mqtt: { topic: "e" }, fallback: 0.05 },
        },
        100,
      ),
      { clock, ...silent },
    );
    for (const f of tariffs.feeds) f.feed.offer(0.25, START);
    const t0 = performance.now();
    let rounds = 0;
    for (let q = 1; q <= 96; q++) {
      clock.advance(900_000);
      void tariffs.settle(undefined);
      rounds++;
    }
    out["quarter-hour round, a dynamic tariff of 100 meters (both directions)"] =
      `${((performance.now() - t0) / rounds).toFixed(3)} ms a round`;
    void tariffs.stop();
  }
  return out;
}

// Alone: npx tsx bench/tariffs.ts
if (import.meta.url === `file://${process.argv[1]}`)
  for (const [k, v] of Object.entries(benchTariffs())) console.log(`${k.padEnd(60)} ${v}`);
