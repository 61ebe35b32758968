/**
 * The line-protocol output: the points it writes, batching and backoff on an injected clock, and against a real
 * VictoriaMetrics (Debian's package, test/helpers/victoria.ts): live points from the bridge with the right
 * measurement, tags, fields and timestamps; a server stopped and restarted mid-stream; the buffer limit; a backfill
 * of an archive queried back, through each of the three write endpoints.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { App } from "../src/app.js";
import { Bus } from "../src/bus.js";
import { parseConfig } from "../src/config/load.js";
import { backfill } from "../src/export/index.js";
import { IntervalPipeline } from "../src/intervals/pipeline.js";
import type { Reading } from "../src/model/types.js";
import { Archive, openArchiveReadOnly } from "../src/outputs/archive/index.js";
import {
  authHeader,
  describeUrl,
  formatLine,
  type InfluxConfig,
  InfluxOutput,
  InfluxSchema,
  intervalLine,
  LineWriter,
  readingLine,
  WriteError,
  writeUrl,
} from "../src/outputs/influx/index.js";
import { parseSmtCsv } from "../src/sources/smt/csv.js";
import { ManualClock } from "../src/util/clock.js";
import { recordingLog } from "./helpers/log.js";
import { type Mosquitto, startMosquitto } from "./helpers/mosquitto.js";
import { smtCsv, smtDay } from "./helpers/smt.js";
import { type Sample, startVictoria, type Victoria } from "./helpers/victoria.js";

const ROOT = join(import.meta.dirname, "..");
const cfg = (over: Record<string, unknown> = {}): InfluxConfig =>
  InfluxSchema.parse({ url: "http://127.0.0.1:1", ...over }) as InfluxConfig;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Samples by metric name and meter, timestamps deduplicated (a retried batch may have landed twice). */
function byTime(samples: Sample[], name: string, labels: Record<string, string> = {}): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of samples) {
    if (s.metric.__name__ !== name) continue;
    if (Object.entries(labels).some(([k, v]) => s.metric[k] !== v)) continue;
    s.timestamps.forEach((t, i) => {
      out.set(t, s.values[i] as number);
    });
  }
  return out;
}

describe("line protocol", () => {
  it("escapes measurement, tags and field keys, sorts tags, writes floats and ms timestamps", () => {
    expect(
      formatLine("my meter,x", { b: "x y", a: "k=v,w" }, { "f 1": 1, g: 2.5, nan: Number.NaN }, 1700000000123),
    ).toBe("my\\ meter\\,x,a=k\\=v\\,w,b=x\\ y f\\ 1=1,g=2.5 1700000000123");
    expect(formatLine("m", { a: "" }, { f: 1 }, 5)).toBe("m f=1 5");
    expect(formatLine("m", {}, { nan: Number.NaN }, 5)).toBeUndefined();
  });

  it("a reading is one point of its numeric catalogue quantities, tagged with the meter", () => {
    const r: Reading = {
      meterId: "home",
      time: Date.UTC(2025, 0, 1, 12),
      values: { energy_import_kwh: 1234.5, power_import_w: 350, tariff: 2, gas_at: "2025-01-01T11:55:00Z", bogus: 1 },
    };
    expect(readingLine(r, "meter2mqtt")).toBe(
      "meter2mqtt,meter=home energy_import_kwh=1234.5,power_import_w=350,tariff=2 1735732800000",
    );
  });

  it("an interval is a point at its start with quality as a field, and none without a reading", () => {
    const base = { meterId: "texas", start: 1000, end: 901_000, direction: "export" as const };
    expect(intervalLine({ ...base, energyKwh: 0.25, quality: "estimated", cost: 0.03 }, "m2m")).toBe(
      "m2m_interval,direction=export,meter=texas energy_kwh=0.25,estimated=1,cost=0.03 1000",
    );
    expect(intervalLine({ ...base, energyKwh: null, quality: "missing" }, "m2m")).toBeUndefined();
  });

  it("writes to each server's endpoint with its kind of authentication", () => {
    expect(writeUrl(cfg({ version: 1, database: "energy" }))).toBe("http://127.0.0.1:1/write?db=energy&precision=ms");
    const v2 = cfg({ url: "https://influx.example:8086/", version: 2, org: "home", bucket: "meters", token: "t0k" });
    expect(writeUrl(v2)).toBe("https://influx.example:8086/api/v2/write?org=home&bucket=meters&precision=ms");
    expect(authHeader(v2)).toBe("Token t0k");
    expect(writeUrl(cfg())).toBe("http://127.0.0.1:1/write?precision=ms");
    expect(authHeader(cfg({ token: "vm" }))).toBe("Bearer vm");
    expect(authHeader(cfg({ version: 1, database: "d", username: "u", password: "p" }))).toBe(
      `Basic ${Buffer.from("u:p").toString("base64")}`,
    );
    expect(describeUrl("http://user:secret@host:8086/influx/?u=x&p=secret")).toBe("http://host:8086/influx");
  });

  it("never logs the token or password, not even when the server is unreachable", async () => {
    const { log, lines } = recordingLog();
    const secret = { token: "s3cret-token-xyz" };
    const writer = new LineWriter(cfg({ ...secret, retry_min: 10 }), { log });
    writer.add(["m f=1 1"]);
    await writer.stop(300);
    expect(lines.map((l) => l.text).join("\n")).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
    expect(lines.map((l) => l.text).join("\n")).not.toContain(secret.token);
    expect(writer.stats.dropped).toBe(1);
  });

  it("rejects configurations the server could not take, naming the key", () => {
    expect(() =>
      parseConfig({ ...{ meters: [{ id: "h", type: "dsmr", port: "/dev/x" }] }, influx: { url: "http://u:p@x:8086" } }),
    ).toThrow(/influx\.url: expected a URL like http:\/\/127\.0\.0\.1:8086, without credentials/);
    const base = { meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }] };
    expect(() => parseConfig({ ...base, influx: { url: "http://x:8086", version: 1 } })).toThrow(
      /influx\.database: missing/,
    );
    expect(() => parseConfig({ ...base, influx: { url: "http://x:8086", version: 2, bucket: "b" } })).toThrow(
      /influx\.org: missing[\s\S]*influx\.token: missing/,
    );
  });
});

describe("LineWriter on a manual clock", () => {
  function setup(over: Record<string, unknown> = {}) {
    const clock = new ManualClock(0);
    const posts: { at: number; lines: string[] }[] = [];
    let fail: WriteError | undefined;
    const { log, lines } = recordingLog();
    const writer = new LineWriter(cfg({ batch_size: 3, flush_interval: 2, retry_min: 1, retry_max: 4, ...over }), {
      clock,
      log,
      post: async (body) => {
        posts.push({ at: clock.now(), lines: body.split("\n") });
        if (fail) throw fail;
      },
    });
    return { clock, posts, writer, lines, setFail: (e?: WriteError) => (fail = e) };
  }

  it("sends a full batch at once and a part-filled one after flush_interval", async () => {
    const { clock, posts, writer } = setup();
    writer.add(["a", "b", "c", "d"]);
    await sleep(0);
    expect(posts).toEqual([{ at: 0, lines: ["a", "b", "c"] }]);
    clock.advance(1999);
    expect(posts).toHaveLength(1);
    clock.advance(1);
    await sleep(0);
    expect(posts[1]).toEqual({ at: 2000, lines: ["d"] });
    expect(writer.stats).toMatchObject({ sent: 4, dropped: 0 });
  });

  it("retries with doubling delays up to retry_max, keeps order, and drops a batch the server rejects", async () => {
    const { clock, posts, writer, setFail, lines } = setup();
    setFail(new WriteError("cannot reach x: ECONNREFUSED", true));
    writer.add(["a", "b", "c"]);
    for (let i = 0; i < 30; i++) {
      await sleep(0);
      clock.advance(500);
    }
    await sleep(0);
    const gaps = posts.slice(1).map((p, i) => p.at - (posts[i] as { at: number }).at);
    expect(gaps.slice(0, 4)).toEqual([1000, 2000, 4000, 4000]);
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(1);
    setFail(undefined);
    writer.add(["d"]);
    clock.advance(10_000);
    await sleep(0);
    clock.advance(10_000);
    await sleep(0);
    expect(posts.at(-1)?.lines).toEqual(["d"]);
    expect(posts.at(-2)?.lines).toEqual(["a", "b", "c"]);

    setFail(new WriteError("x answered 400: unable to parse", false));
    writer.add(["bad1", "bad2", "bad3"]);
    await sleep(0);
    expect(writer.stats.dropped).toBe(3);
    expect(writer.buffered).toBe(0);
  });

  it("keeps at most buffer_limit points, dropping the oldest", async () => {
    const { clock, writer, setFail, posts } = setup({ buffer_limit: 5 });
    setFail(new WriteError("down", true));
    writer.add(["1", "2", "3"]);
    await sleep(0);
    writer.add(["4", "5", "6", "7"]);
    expect(writer.buffered).toBe(5);
    expect(writer.stats.dropped).toBe(2);
    setFail(undefined);
    clock.advance(1000);
    await sleep(0);
    clock.advance(2000);
    await sleep(0);
    expect(posts.slice(-2).flatMap((p) => p.lines)).toEqual(["3", "4", "5", "6", "7"]);
  });
});

describe("against VictoriaMetrics", () => {
  let vm: Victoria;
  let broker: Mosquitto;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "m2m-influx-"));
    [vm, broker] = await Promise.all([startVictoria(), startMosquitto()]);
  }, 30_000);
  afterAll(async () => {
    await Promise.all([vm?.stop(), broker?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the bridge's live points arrive with the measurement, the meter tag, every field and the meter's timestamps", async () => {
    const app = new App(
      parseConfig({
        log_level: "error",
        mqtt: { url: broker.url },
        archive: { path: join(dir, "live.sqlite"), interval: 0 },
        meters: [
          { id: "home", type: "dsmr", port: `file:${join(ROOT, "fixtures/demo/nl-dsmr5.txt")}`, replay_interval_ms: 0 },
        ],
        tariffs: { t: { meters: ["home"], currency: "EUR", import: 0.3 } },
        influx: { url: vm.url, version: "victoria", database: "site_a", flush_interval: 0.05, batch_size: 50 },
      }),
    );
    const seen: Reading[] = [];
    app.bus.subscribe("test", "reading", (r) => {
      seen.push(r);
    });
    await app.start();
    await Promise.all(app.sources.map((s) => s.finished));
    await app.stop();
    expect(seen.length).toBeGreaterThan(200);
    expect(app.influx?.writer.stats).toMatchObject({ sent: seen.length, dropped: 0 });

    const samples = await vm.export('{__name__=~"meter2mqtt_.*",meter="home"}');
    for (const s of samples) expect(s.metric).toMatchObject({ meter: "home", db: "site_a" });
    // Every numeric value of every reading, under meter2mqtt_<quantity>, at the reading's time.
    const names = new Set(seen.flatMap((r) => Object.keys(r.values)));
    for (const name of ["energy_import_kwh", "power_import_w", "voltage_l1_v", "gas_m3", "cost_import_total"]) {
      expect(names.has(name)).toBe(true);
      const want = new Map(
        seen.filter((r) => typeof r.values[name] === "number").map((r) => [r.time, r.values[name] as number]),
      );
      expect(byTime(samples, `meter2mqtt_${name}`)).toEqual(want);
    }
    // Strings (timestamps, the currency) are not fields: they would be series of zeros in VictoriaMetrics.
    expect(samples.some((s) => s.metric.__name__ === "meter2mqtt_gas_at")).toBe(false);
  }, 30_000);

  it("loses nothing while the server is stopped and restarted mid-stream", async () => {
    const out = new InfluxOutput(
      cfg({ url: vm.url, flush_interval: 0.02, batch_size: 20, retry_min: 0.05, retry_max: 0.2, timeout: 2 }),
      { log: recordingLog().log },
    );
    const t0 = Date.UTC(2025, 5, 1);
    const send = (i: number) =>
      out.onReading({ meterId: "restart", time: t0 + i * 1000, values: { power_import_w: i } });
    for (let i = 0; i < 100; i++) send(i);
    await waitFor(() => out.writer.buffered === 0, 10_000, "the first points to go out");
    await vm.pause();
    for (let i = 100; i < 250; i++) {
      send(i);
      if (i % 25 === 0) await sleep(20);
    }
    expect(out.writer.stats.failures).toBeGreaterThan(0);
    await vm.resume();
    for (let i = 250; i < 300; i++) send(i);
    await waitFor(() => out.writer.buffered === 0, 15_000, "the backlog to go out");
    await out.stop();
    const got = byTime(
      await vm.export('{__name__="meter2mqtt_power_import_w",meter="restart"}'),
      "meter2mqtt_power_import_w",
    );
    expect(got.size).toBe(300);
    for (let i = 0; i < 300; i++) expect(got.get(t0 + i * 1000)).toBe(i);
    expect(out.writer.stats.dropped).toBe(0);
  }, 40_000);

  it("past buffer_limit the oldest points of the outage are dropped and the newest arrive", async () => {
    const out = new InfluxOutput(
      cfg({ url: vm.url, flush_interval: 0.02, batch_size: 10, buffer_limit: 50, retry_min: 0.05, retry_max: 0.1 }),
      { log: recordingLog().log },
    );
    const t0 = Date.UTC(2025, 5, 2);
    await vm.pause();
    for (let i = 0; i < 120; i++)
      out.onReading({ meterId: "limit", time: t0 + i * 1000, values: { power_import_w: i } });
    await sleep(100);
    await vm.resume();
    await waitFor(() => out.writer.buffered === 0, 15_000, "the kept points to go out");
    await out.stop();
    expect(out.writer.stats.dropped).toBe(70);
    const got = byTime(
      await vm.export('{__name__="meter2mqtt_power_import_w",meter="limit"}'),
      "meter2mqtt_power_import_w",
    );
    expect([...got.values()].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 70 + i));
  }, 40_000);

  it("a backfill's points can be queried back, through the 1.x, 2.x and VictoriaMetrics endpoints", async () => {
    const path = join(dir, "backfill.sqlite");
    const archive = new Archive({ enabled: true, path, interval: 0 });
    await archive.start();
    const t0 = Date.UTC(2025, 2, 1);
    for (let i = 0; i < 500; i++)
      archive.add({
        meterId: "archived",
        time: t0 + i * 10_000,
        values: { energy_import_kwh: 1000 + i / 1000, power_import_w: 360, gas_at: "x" },
      });
    const rows = smtDay({ day: "2025-03-01" });
    await new IntervalPipeline(archive, new Bus()).ingest({
      meterId: "texas",
      timezone: "America/Chicago",
      intervals: parseSmtCsv(smtCsv(rows), { file: "t", meterId: "texas" }).intervals,
      receivedAt: Date.UTC(2025, 2, 2, 12),
    });
    await archive.flush();
    await archive.stop();

    const db = openArchiveReadOnly(path);
    const meters = [
      { id: "archived", timezone: "Europe/Amsterdam" },
      { id: "texas", timezone: "America/Chicago" },
    ];
    const all = { from: 0, to: Date.UTC(2100, 0, 1) };
    const targets = [
      cfg({ url: vm.url, version: 1, database: "v1", batch_size: 128 }),
      cfg({ url: vm.url, version: 2, org: "o", bucket: "b2", token: "tok", batch_size: 128, measurement: "v2m" }),
      cfg({ url: vm.url, batch_size: 1000, measurement: "vmm" }),
    ];
    for (const target of targets) {
      const r = await backfill(db, meters, target, all);
      expect(r).toEqual([
        { meterId: "archived", points: 500 },
        { meterId: "texas", points: 96 },
      ]);
    }
    db.close();

    const v1 = await vm.export('{__name__="meter2mqtt_energy_import_kwh",meter="archived"}');
    expect(v1.map((s) => s.metric.db)).toEqual(["v1"]);
    const energy = byTime(v1, "meter2mqtt_energy_import_kwh");
    expect(energy.size).toBe(500);
    expect(energy.get(t0 + 499 * 10_000)).toBe(1000.499);
    expect(byTime(await vm.export('{__name__="v2m_power_import_w",meter="archived"}'), "v2m_power_import_w").size).toBe(
      500,
    );

    const intervals = await vm.export('{__name__="vmm_interval_energy_kwh",meter="texas"}');
    const imports = byTime(intervals, "vmm_interval_energy_kwh", { direction: "import" });
    expect(imports.size).toBe(96);
    const expected = parseSmtCsv(smtCsv(rows), { file: "t", meterId: "texas" }).intervals.filter(
      (i) => i.direction === "import",
    );
    for (const i of expected) expect(imports.get(i.start)).toBe(i.energyKwh);
  }, 30_000);
});
