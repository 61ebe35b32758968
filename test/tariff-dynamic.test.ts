/**
 * Dynamic prices: what the price integrations send (Nord Pool's raw_today, ENTSO-E's prices, Tibber's startsAt/total,
 * a bare number on a topic), the quarter-hour rules, and the bridge end to end with a real mosquitto price topic and
 * the Home Assistant websocket stand-in: the cost of each quarter hour equals the hand computation across a price
 * change, the DST change of 2026-10-25 in Amsterdam and an outage of the source; the archive keeps the prices used.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPrices } from "../src/check.js";
import { parseConfig } from "../src/config/load.js";
import type { Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import { MqttOutput } from "../src/outputs/mqtt/index.js";
import { PriceFeed, parseList, parsePath, QUARTER, readMessage } from "../src/tariffs/dynamic.js";
import { TariffService } from "../src/tariffs/index.js";
import { DynamicPriceSchema } from "../src/tariffs/schema.js";
import { ManualClock } from "../src/util/clock.js";
import { type FakeHa, startFakeHa } from "./helpers/fake-ha.js";
import { recordingLog } from "./helpers/log.js";
import { type Mosquitto, startMosquitto, until } from "./helpers/mosquitto.js";

const Z = (s: string): number => Date.parse(s);
/** An instant as Amsterdam writes it on 2026-10-25: +02:00 until 01:00 UTC, +01:00 from then on. */
const amsterdam = (ms: number): string => {
  const off = ms < Z("2026-10-25T01:00:00Z") ? 2 : 1;
  return `${new Date(ms + off * 3_600_000).toISOString().slice(0, 19)}+0${off}:00`;
};
const dir = mkdtempSync(join(tmpdir(), "m2m-dynamic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("what price sources send", () => {
  it("reads paths as users write them, templates included", () => {
    expect(parsePath("price")).toEqual(["price"]);
    expect(parsePath("data.current.total")).toEqual(["data", "current", "total"]);
    expect(parsePath("prices[0].value")).toEqual(["prices", 0, "value"]);
    expect(parsePath("{{ value_json.price }}")).toEqual(["price"]);
    expect(parsePath("value_json['price-now']")).toEqual(["price-now"]);
    expect(parsePath("a..b")).toBeUndefined();
    expect(parsePath("price | float")).toBeUndefined();
  });

  it("takes a number, JSON at a path, or a list; anything else is no price", () => {
    expect(readMessage("0.2345", undefined)).toEqual({ kind: "price", value: 0.2345 });
    expect(readMessage('{"price": "0.31"}', ["price"])).toEqual({ kind: "price", value: 0.31 });
    expect(readMessage('{"price": 0.31}', undefined).kind).toBe("none");
    expect(readMessage("unavailable", undefined).kind).toBe("none");
    expect(readMessage("12,5", undefined).kind).toBe("none");
    expect(readMessage('{"price": true}', ["price"]).kind).toBe("none");
    expect(readMessage("NaN", undefined).kind).toBe("none");
    const list = readMessage(JSON.stringify({ today: [{ startsAt: "2026-10-25T00:00:00.000+02:00", total: 0.2 }] }), [
      "today",
    ]);
    expect(list).toMatchObject({ kind: "list", slots: [{ start: Z("2026-10-24T22:00:00Z"), value: 0.2 }] });
  });

  it("reads the lists of Nord Pool, ENTSO-E and Tibber on the DST day, 25 hours, without guessing zones", () => {
    // Nord Pool (custom integration) raw_today: start/end with the local offset, 25 entries on the day clocks go back.
    const nordpool = [];
    for (let h = 0; h < 25; h++) {
      const start = Z("2026-10-24T22:00:00Z") + h * 3_600_000;
      nordpool.push({ start: amsterdam(start), end: amsterdam(start + 3_600_000), value: 0.1 + h / 100 });
    }
    const np = parseList(nordpool);
    expect(np.bad).toBe(0);
    expect(np.slots).toHaveLength(25);
    // Local 02:00 comes twice: once at +02:00 (00:00 UTC), once at +01:00 (01:00 UTC), with different prices.
    expect(nordpool[2]?.start).toBe("2026-10-25T02:00:00+02:00");
    expect(nordpool[3]?.start).toBe("2026-10-25T02:00:00+01:00");
    expect(np.slots[2]).toEqual({
      start: Z("2026-10-25T00:00:00Z"),
      end: Z("2026-10-25T01:00:00Z"),
      value: 0.1 + 2 / 100,
    });
    expect(np.slots[3]).toEqual({
      start: Z("2026-10-25T01:00:00Z"),
      end: Z("2026-10-25T02:00:00Z"),
      value: 0.1 + 3 / 100,
    });
    // ENTSO-E: {time, price}, quarter hours since the single day-ahead market went to 15 minutes; no end given.
    const entsoe = parseList([
      { time: "2026-10-25 00:00:00+02:00", price: 0.1 },
      { time: "2026-10-25T00:15:00+02:00", price: 0.2 },
    ]);
    expect(entsoe.slots.map((s) => (s.end - s.start) / 60_000)).toEqual([15, 15]);
    // A time without an offset is refused, not read in this machine's zone; so is a slot off the quarter hours.
    const bad = parseList([
      { startsAt: "2026-10-25T00:00:00", total: 0.1 },
      { startsAt: "2026-10-25T00:07:00Z", total: 0.1 },
      { startsAt: "2026-10-25T01:00:00Z", total: "x" },
      null,
    ]);
    expect(bad).toEqual({ slots: [], bad: 4 });
  });
});

describe("a quarter hour's price", () => {
  const config = DynamicPriceSchema.parse({ mqtt: { topic: "p" }, fallback: 0.5, stale_after_minutes: 30 });
  const T = Z("2026-03-02T10:00:00Z");

  it("is the list's, else the newest price sent before the quarter ended, else the fallback; settled once over", () => {
    let now = T;
    const feed = new PriceFeed(config, () => now);
    expect(feed.price(T).price).toBe(0.5);
    expect(feed.price(T).origin).toBe("fallback");
    now = T + 5_000;
    feed.offer(0.2);
    // Sent 5 s into the quarter: prices the whole quarter, and the ones after it.
    expect(feed.price(T).price).toBe(0.2);
    expect(feed.price(T + QUARTER).price).toBe(0.2);
    feed.offerList([{ start: T + QUARTER, end: T + 2 * QUARTER, value: 0.9 }]);
    expect(feed.price(T + QUARTER).price).toBe(0.9);
    now = T + QUARTER + 1;
    const settled = feed.price(T);
    expect(settled).toEqual({ start: T, price: 0.2, origin: "mqtt" });
    feed.offer(0.3);
    // The new price does not reach back into a quarter that has ended.
    expect(feed.price(T).price).toBe(0.2);
    expect(feed.price(T + 2 * QUARTER).price).toBe(0.3);
    // 30 minutes of silence and the fallback applies: stale strictly after the limit.
    now = T + QUARTER + 1 + 30 * 60_000;
    expect(feed.stale()).toBe(false);
    now += 1;
    expect(feed.stale()).toBe(true);
    expect(feed.price(now).price).toBe(0.5);
  });

  it("applies multiply and add to every number the source gives", () => {
    const feed = new PriceFeed(
      DynamicPriceSchema.parse({ entity: "sensor.entsoe", fallback: 0.4, multiply: 0.00121, add: 0.1 }),
      () => T,
    );
    feed.offer(100); // 100 EUR/MWh, +21 % VAT, + 0.10 per kWh
    expect(feed.price(T).price).toBeCloseTo(0.221, 12);
  });

  it("rejects configurations that cannot work, naming the key", () => {
    const ha = { url: "ws://homeassistant.local:8123/api/websocket", token: "a-token" };
    const issue = (tariff: unknown, homeassistant: object = ha): string => {
      try {
        parseConfig({
          homeassistant,
          meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }],
          tariffs: { t: tariff },
        });
        return "";
      } catch (err) {
        return (err as Error).message;
      }
    };
    const base = { meters: ["home"], currency: "EUR" };
    expect(issue({ ...base, import: { mqtt: { topic: "p" }, fallback: 0.3 } })).toContain(
      "tariffs.t.import: a price source needs `type: dynamic` on the tariff",
    );
    expect(issue({ ...base, type: "dynamic", import: 0.3 })).toContain(
      "tariffs.t.import: a dynamic tariff reads its import price from a source",
    );
    expect(issue({ ...base, type: "dynamic", import: { mqtt: { topic: "p/#" }, fallback: 0.3 } })).toContain(
      "tariffs.t.import.mqtt.topic: expected one topic",
    );
    expect(
      issue({ ...base, type: "dynamic", import: { entity: "sensor.x", mqtt: { topic: "p" }, fallback: 1 } }),
    ).toContain("expected one price source");
    expect(issue({ ...base, type: "dynamic", import: { entity: "sensor.x" } })).toContain(
      "tariffs.t.import: fallback: Invalid input: expected number",
    );
    expect(issue({ ...base, type: "dynamic", import: { entity: "sensor.x", fallback: 0.3 }, export: 0.05 })).toBe("");
    // An entity without a way to reach Home Assistant, and a path that is no path, are refused at start.
    expect(issue({ ...base, type: "dynamic", import: { entity: "sensor.x", fallback: 0.3 } }, {})).toContain(
      "tariffs.t.import.entity: a price from Home Assistant needs homeassistant.url and homeassistant.token",
    );
    expect(
      issue({ ...base, type: "dynamic", import: { mqtt: { topic: "p", path: "price | float" }, fallback: 0.3 } }),
    ).toContain("tariffs.t.import.mqtt.path: expected a path like price");
  });

  it("keeps the newest price however many messages came since, and forgets what no quarter needs", () => {
    let now = T;
    const feed = new PriceFeed(DynamicPriceSchema.parse({ entity: "sensor.p", fallback: 0.5 }), () => now);
    feed.offer(0.2);
    feed.hold(true);
    // Four days of attribute changes every 10 s that carry no new price (34,560 messages).
    for (let i = 0; i < 34_560; i++) {
      now += 10_000;
      feed.heard();
    }
    expect(feed.lastPriceAt).toBe(T);
    expect(feed.price(now)).toEqual({
      start: Math.floor(now / QUARTER) * QUARTER,
      price: 0.2,
      origin: "home_assistant",
    });
    const history = (feed as unknown as { history: unknown[] }).history;
    expect(history.length).toBeLessThanOrEqual(20_000);
  });
});

// --- end to end ------------------------------------------------------------------------------------------------

/** Energy per minute in each UTC hour of the run (kWh): constant within an hour, so an hour's report is exact too. */
const RATE = [0.01, 0.02, 0.015, 0.03, 0.025];
const START = Z("2026-10-25T00:00:00Z"); // 02:00 CEST; at 01:00 UTC Amsterdam goes back to 02:00 CET
const MINUTES = 4 * 60;

interface Run {
  costs: number[];
  readings: Reading[];
  archivePath: string;
}

/** Readings every minute of the run through the bridge's coster; `at(minute)` runs before each minute's reading. */
async function drive(
  clock: ManualClock,
  tariffs: TariffService,
  archive: Archive,
  at: (minute: number) => Promise<void>,
): Promise<Run> {
  const coster = tariffs.coster();
  const readings: Reading[] = [];
  let register = 1000;
  for (let m = 0; m <= MINUTES; m++) {
    await at(m);
    if (m > 0) register += RATE[Math.floor((m - 1) / 60)] as number;
    const r = coster({
      meterId: "home",
      time: clock.now(),
      values: { energy_import_kwh: Math.round(register * 1e6) / 1e6 },
    });
    readings.push(r);
    archive.add(r);
    clock.advance(60_000);
  }
  await tariffs.settle(archive);
  await archive.flush();
  return { costs: readings.map((r) => r.values.cost_import_total as number), readings, archivePath: "" };
}

/** The hand computation: each minute's energy at the price of its quarter hour. */
function expectedCost(priceOfQuarter: (q: number) => number): number {
  let cost = 0;
  for (let m = 1; m <= MINUTES; m++) {
    const kwh = RATE[Math.floor((m - 1) / 60)] as number;
    const q = Math.floor((START + (m - 1) * 60_000) / QUARTER) * QUARTER;
    cost += kwh * priceOfQuarter(q);
  }
  return cost;
}

/** The bridge's archive and tariffs on a manual clock at START, as App.start sets them up. */
async function bridgeParts(cfg: ReturnType<typeof parseConfig>) {
  const clock = new ManualClock(START);
  const log = recordingLog();
  const archive = new Archive(cfg.archive, { clock, log: log.log });
  await archive.start();
  const tariffs = new TariffService(cfg, { clock, log: log.log });
  return { clock, log, archive, tariffs, feed: tariffs.feeds[0]?.feed as PriceFeed };
}

/** The calendar written, then the price sources followed and the quarter-hour round started. */
async function startPricing(tariffs: TariffService, archive: Archive): Promise<void> {
  tariffs.startCalendar(archive);
  await tariffs.calendarDone;
  tariffs.startPrices(archive);
}

/** One Amsterdam meter, `home`, whose tariff `dyn` takes its import price from `source`. */
function dynamicConfig(path: string, source: Record<string, unknown>, more: Record<string, unknown>) {
  return parseConfig({
    ...more,
    archive: { path, interval: 0 },
    meters: [{ id: "home", type: "dsmr", port: "/dev/null", timezone: "Europe/Amsterdam" }],
    tariffs: { dyn: { type: "dynamic", meters: ["home"], currency: "EUR", import: source } },
  });
}

function archived(path: string) {
  const db = openArchiveReadOnly(path);
  try {
    return {
      prices: new Map(
        (
          db
            .prepare("SELECT start, price, origin FROM dynamic_prices WHERE tariff = 'dyn' AND direction = 'import'")
            .all() as { start: string; price: number; origin: string }[]
        ).map((r) => [Date.parse(r.start), r]),
      ),
      slots: new Map(
        (
          db.prepare("SELECT start, import_price FROM tariff_slots WHERE meter_id = 'home'").all() as {
            start: string;
            import_price: number;
          }[]
        ).map((r) => [Date.parse(r.start), r.import_price]),
      ),
      day: db
        .prepare(
          "SELECT sum(import_cost) AS c, sum(import_kwh) AS kwh FROM report_hourly WHERE meter_id = 'home' AND hour >= ? AND hour < ?",
        )
        .get("2026-10-25T00:00:00Z", "2026-10-25T04:00:00Z") as { c: number; kwh: number },
    };
  } finally {
    db.close();
  }
}

describe("the bridge with a dynamic tariff", () => {
  let broker: Mosquitto;
  let ha: FakeHa;
  beforeAll(async () => {
    broker = await startMosquitto();
    ha = await startFakeHa();
  });
  afterAll(async () => {
    await ha?.close();
    await broker?.stop();
  });

  it("prices each quarter hour from an MQTT topic: a change, the DST night, an outage and the source's return", async () => {
    const path = join(dir, "mqtt.sqlite");
    const cfg = dynamicConfig(
      path,
      { mqtt: { topic: "prices/now", path: "{{ value_json.price }}" }, fallback: 0.5, stale_after_minutes: 75 },
      { mqtt: { url: broker.url, base_topic: "m2m" } },
    );
    const { clock, log, archive, tariffs, feed } = await bridgeParts(cfg);
    const mqtt = new MqttOutput(cfg.mqtt, cfg.meters, { clock, log: log.log });
    tariffs.followTopics(mqtt);
    await mqtt.start();
    await startPricing(tariffs, archive);
    const pub: MqttClient = await connectAsync(broker.url);
    const send = async (price: number | string): Promise<void> => {
      const before = feed.lastPriceAt;
      await pub.publishAsync("prices/now", typeof price === "string" ? price : JSON.stringify({ price }), {
        qos: 1,
        retain: true,
      });
      if (typeof price === "number") await until(() => feed.lastPriceAt !== before, 5000, `price ${price} received`);
    };
    try {
      const run = await drive(clock, tariffs, archive, async (m) => {
        if (m === 0) await send(0.2);
        // 01:02 UTC, after two readings of the 01:00 quarter: that quarter is priced at 0.30 all the same.
        if (m === 62) await send(0.3);
        if (m === 120) await send(0.25); // 02:00, then the source falls silent
        if (m === 140) await send("garbage"); // noise is not a price, and does not count as the source speaking
        if (m === 230) await send(0.22); // 03:50: back
      });
      const priceOf = (q: number): number => {
        const t = (q - START) / 60_000; // minutes since 00:00 UTC
        if (t < 60) return 0.2;
        if (t < 120) return 0.3;
        if (t < 195) return 0.25; // heard at 02:00: fine for quarters judged until 03:15 (75 minutes, not more)
        if (t < 225) return 0.5; // stale: the fallback
        return 0.22; // sent at 03:50, so the 03:45 quarter is priced with it
      };
      const want = expectedCost(priceOf);
      // Each quarter hour on its own: the cost totals' steps equal energy × that quarter's price.
      for (let q = START; q < START + MINUTES * 60_000; q += QUARTER) {
        const i0 = (q - START) / 60_000;
        const step = (run.costs[i0 + 15] as number) - (run.costs[i0] as number);
        expect(step, new Date(q).toISOString()).toBeCloseTo(15 * (RATE[Math.floor(i0 / 60)] as number) * priceOf(q), 6);
      }
      expect(run.costs.at(-1)).toBeCloseTo(want, 6);
      // The warnings a user sees: the source silent, then back.
      expect(
        log
          .at("warn")
          .some((l) => /no import price from prices\/now since .* using the fallback 0\.5 EUR\/kWh/.test(l)),
      ).toBe(true);
      expect(log.at("info").some((l) => /import prices come in again/.test(l))).toBe(true);
      expect(log.at("warn").some((l) => l.includes('not a number, and not JSON: "garbage"'))).toBe(true);
      // The archive keeps each quarter's price and where it came from; the reports use the same prices.
      await archive.stop();
      const a = archived(path);
      for (let q = START; q < START + MINUTES * 60_000; q += QUARTER) {
        expect(a.prices.get(q)?.price, new Date(q).toISOString()).toBeCloseTo(priceOf(q), 9);
        expect(a.prices.get(q)?.origin).toBe(priceOf(q) === 0.5 ? "fallback" : "mqtt");
        expect(a.slots.get(q)).toBeCloseTo(priceOf(q), 9);
      }
      expect(a.day.c).toBeCloseTo(want, 6);
    } finally {
      await pub.endAsync();
      await tariffs.stop();
      await mqtt.stop();
      await archive.stop().catch(() => {});
    }
  });

  it("`meter2mqtt check` asks each price source once and says what it gives, or what to fix", async () => {
    ha.accept();
    ha.setState("sensor.entsoe_average", "98.5", { unit_of_measurement: "EUR/MWh" });
    ha.setState("sensor.off", "unavailable", {});
    const pub: MqttClient = await connectAsync(broker.url);
    await pub.publishAsync("check/price", JSON.stringify({ now: { total: 0.2412 } }), { qos: 1, retain: true });
    await pub.endAsync();
    const cfg = parseConfig({
      mqtt: { url: broker.url },
      homeassistant: { url: ha.url, token: ha.token },
      meters: [
        { id: "a", type: "dsmr", port: "/dev/null" },
        { id: "b", type: "dsmr", port: "/dev/null" },
        { id: "c", type: "dsmr", port: "/dev/null" },
        { id: "d", type: "dsmr", port: "/dev/null" },
      ],
      tariffs: {
        mwh: {
          type: "dynamic",
          meters: ["a"],
          currency: "EUR",
          import: { entity: "sensor.entsoe_average", fallback: 0.3, multiply: 0.001 },
        },
        forgot: {
          type: "dynamic",
          meters: ["b"],
          currency: "EUR",
          import: { entity: "sensor.entsoe_average", fallback: 0.3 },
        },
        gone: {
          type: "dynamic",
          meters: ["c"],
          currency: "EUR",
          import: { entity: "sensor.nordpool_typo", fallback: 0.3 },
          export: { entity: "sensor.off", fallback: 0 },
        },
        topic: {
          type: "dynamic",
          meters: ["d"],
          currency: "EUR",
          import: { mqtt: { topic: "check/price", path: "now.total" }, fallback: 0.3 },
          export: { mqtt: { topic: "check/silent" }, fallback: 0.05 },
        },
      },
    });
    const results = await Promise.all(checkPrices(cfg, 1000));
    const by = (key: string) => results.find((r) => r.part.startsWith(`price ${key} `));
    expect(by("tariffs.mwh.import")).toMatchObject({
      ok: true,
      detail: "sensor.entsoe_average is 98.5 EUR/MWh: 0.0985 per kWh after multiply and add",
    });
    expect(by("tariffs.forgot.import")).toMatchObject({
      ok: false,
      detail:
        "sensor.entsoe_average: its unit is EUR/MWh: set tariffs.forgot.import.multiply: 0.001 for a price per kWh",
    });
    expect(by("tariffs.gone.import")).toMatchObject({
      ok: false,
      detail: expect.stringContaining(
        "Home Assistant has no entity sensor.nordpool_typo: check tariffs.gone.import.entity",
      ),
    });
    expect(by("tariffs.gone.export")).toMatchObject({ ok: false, detail: 'sensor.off is "unavailable", not a price' });
    expect(by("tariffs.topic.import")).toMatchObject({ ok: true, detail: "check/price gives 0.2412: 0.2412 per kWh" });
    expect(by("tariffs.topic.export")).toMatchObject({
      ok: false,
      detail: expect.stringContaining("nothing on check/silent in 1 s: the fallback 0.05 applies"),
    });
  });

  it("prices from a Home Assistant entity: its list on the DST day, its state, and HA going away", async () => {
    const path = join(dir, "ha.sqlite");
    const cfg = dynamicConfig(
      path,
      { entity: "sensor.nordpool_kwh_nl_eur_3_10_021", fallback: 0.5, stale_after_minutes: 30, add: 0.1 },
      { homeassistant: { url: ha.url, token: ha.token } },
    );
    // The day's prices as the Nord Pool integration keeps them: hourly, local offsets, the 02:00 hour twice.
    const raw = (hours: number) =>
      Array.from({ length: hours }, (_, h) => {
        const s = Z("2026-10-24T22:00:00Z") + h * 3_600_000;
        return {
          start: amsterdam(s),
          end: amsterdam(s + 3_600_000),
          value: Math.round((0.05 + h * 0.01) * 1000) / 1000,
        };
      });
    // Only the first 4 hours of the day listed (up to 02:00 UTC); the state carries the price after that.
    ha.setState("sensor.nordpool_kwh_nl_eur_3_10_021", "0.17", { unit_of_measurement: "EUR/kWh", raw_today: raw(4) });
    const { clock, log, archive, tariffs, feed } = await bridgeParts(cfg);
    await startPricing(tariffs, archive);
    try {
      await until(() => feed.lastPriceAt !== undefined, 5000, "the entity's state");
      const run = await drive(clock, tariffs, archive, async (m) => {
        if (m === 150) {
          // 02:30 UTC: a new price in the state, then HA restarts and stays away.
          ha.setState("sensor.nordpool_kwh_nl_eur_3_10_021", "0.21", {
            unit_of_measurement: "EUR/kWh",
            raw_today: raw(4),
          });
          await until(() => feed.price(clock.now()).price === 0.31, 5000, "the new state");
          ha.dropClients({ refuse: true });
          await until(
            () => log.at("warn").some((l) => l.includes("no connection to Home Assistant")),
            5000,
            "the drop",
          );
        }
      });
      const priceOf = (q: number): number => {
        const t = (q - START) / 60_000;
        if (t < 120) return 0.05 + (2 + Math.floor(t / 60)) * 0.01 + 0.1; // listed: 00:00 UTC is the list's 3rd hour
        if (t < 150) return 0.17 + 0.1; // the state (the list ends at 02:00 UTC)
        // 0.21 from 02:30; HA gone since then: the quarters judged more than 30 minutes later (from 03:00) get the
        // fallback.
        if (t < 180) return 0.21 + 0.1;
        return 0.5;
      };
      for (let q = START; q < START + MINUTES * 60_000; q += QUARTER) {
        const i0 = (q - START) / 60_000;
        const step = (run.costs[i0 + 15] as number) - (run.costs[i0] as number);
        expect(step, new Date(q).toISOString()).toBeCloseTo(15 * (RATE[Math.floor(i0 / 60)] as number) * priceOf(q), 6);
      }
      expect(run.costs.at(-1)).toBeCloseTo(expectedCost(priceOf), 6);
      await archive.stop();
      const a = archived(path);
      for (let q = START; q < START + MINUTES * 60_000; q += QUARTER)
        expect(a.prices.get(q)?.price, new Date(q).toISOString()).toBeCloseTo(priceOf(q), 9);
      // The subscription asked for the one entity, not every state change of the house.
      expect(ha.commands.filter((c) => c.type === "subscribe_entities").at(-1)).toMatchObject({
        entity_ids: ["sensor.nordpool_kwh_nl_eur_3_10_021"],
      });
    } finally {
      await tariffs.stop();
      await archive.stop().catch(() => {});
    }
  });
});
