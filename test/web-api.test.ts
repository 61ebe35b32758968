import { connect, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../src/config/load.js";
import { createLogger } from "../src/util/log.js";
import { hashPassword, verifyPassword } from "../src/web/auth.js";
import { printable } from "../src/web/live.js";
import { sendJson, WebServer } from "../src/web/server.js";
import { corrupt, FIXTURE_DAYS, INTERVAL_MONTH, startWebBridge, type WebBridge } from "./helpers/web.js";

const MQTT_PASSWORD = "s3cret-mqtt-pa55word";
// biome-ignore lint/suspicious/noExplicitAny: the API's JSON, checked field by field by the assertions
type Json = any;

async function json(b: WebBridge, path: string, init?: RequestInit): Promise<{ status: number; body: Json }> {
  const res = await fetch(new URL(path, b.url), init);
  return { status: res.status, body: await res.json() };
}

const post = (body: unknown, type = "application/json"): RequestInit => ({
  method: "POST",
  headers: { "content-type": type },
  body: JSON.stringify(body),
});

async function until<T>(f: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Reads server-sent events from a fetch body until `want` returns true for one. */
async function nextEvent(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  want: (event: string, data: Json) => boolean,
  buf: { text: string },
): Promise<Json> {
  const decoder = new TextDecoder();
  const end = Date.now() + 10_000;
  for (;;) {
    let at: number;
    while ((at = buf.text.indexOf("\n\n")) >= 0) {
      const block = buf.text.slice(0, at);
      buf.text = buf.text.slice(at + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data && want(event, JSON.parse(data))) return JSON.parse(data);
    }
    if (Date.now() > end) throw new Error("no such event");
    const r = await reader.read();
    if (r.done) throw new Error("stream ended");
    buf.text += decoder.decode(r.value, { stream: true });
  }
}

describe("web API on a running bridge", () => {
  let b: WebBridge;
  let watcher: MqttClient;
  const loadStates: string[] = [];

  beforeAll(async () => {
    b = await startWebBridge({ web: { max_clients: 2 }, mqtt: { username: "bridge", password: MQTT_PASSWORD } });
    watcher = connect(b.app.config.mqtt.url);
    watcher.on("message", (_t, p) => loadStates.push(p.toString()));
    await new Promise<void>((r) => watcher.subscribe("meter2mqtt/loads/boiler/state", () => r()));
  }, 60_000);

  afterAll(async () => {
    watcher?.end(true);
    await b?.close();
  });

  it("serves the page with relative URLs, and under ingress with the ingress path as its base", async () => {
    const plain = await fetch(b.url);
    expect(plain.status).toBe(200);
    expect(plain.headers.get("content-security-policy")).toContain("default-src 'self'");
    const html = await plain.text();
    expect(html).toContain('<base href="./">');
    expect(html).not.toMatch(/(src|href)="\/[^/]/);
    const ingress = await (
      await fetch(b.url, { headers: { "x-ingress-path": "/api/hassio_ingress/abc_DEF-123" } })
    ).text();
    expect(ingress).toContain('<base href="/api/hassio_ingress/abc_DEF-123/">');
    const forged = await (await fetch(b.url, { headers: { "x-ingress-path": '"><script>alert(1)</script>' } })).text();
    expect(forged).toContain('<base href="./">');
    expect(forged).not.toContain("<script>alert");
    const js = await fetch(new URL("app.js", b.url), { headers: { "accept-encoding": "gzip" } });
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toContain("text/javascript");
    const again = await fetch(new URL("app.js", b.url), { headers: { "if-none-match": js.headers.get("etag")! } });
    expect(again.status).toBe(304);
    expect((await fetch(new URL("nope", b.url))).status).toBe(404);
    expect((await fetch(new URL("api/status", b.url), { method: "DELETE" })).status).toBe(405);
    expect((await fetch(new URL("health", b.url))).status).toBeLessThan(600);
  });

  it("status: meters, outputs and the archive, then a telegram's counters, text and a rejection's reason", async () => {
    const first = await json(b, "api/status");
    expect(first.status).toBe(200);
    expect(first.body.meters.map((m: { id: string }) => m.id)).toEqual(["home", "texas"]);
    expect(first.body.meters[0]).toMatchObject({
      type: "dsmr",
      transport: expect.stringMatching(/^tcp:\/\/127\.0\.0\.1:\d+$/),
    });
    expect(first.body.archive.size_bytes).toBeGreaterThan(10_000);
    expect(first.body.decoders).toEqual(expect.arrayContaining(["dsmr", "raven", "smt-csv"]));
    await until(async () => (await json(b, "api/status")).body.mqtt.connected);

    b.send(b.telegram(1500));
    const after = await until(async () => {
      const s = (await json(b, "api/status")).body;
      return s.meters[0].frames_received >= 1 ? s : undefined;
    });
    expect(after.meters[0].last_raw).toMatch(/^\/ISK5\\2M550T/);
    expect(after.meters[0].last_frame).toMatch(/Z$/);
    expect(after.meters[0].identity.manufacturer).toBeTruthy();

    b.send(corrupt(b.telegram(1500)));
    const rejected = await until(async () => {
      const s = (await json(b, "api/status")).body;
      return s.meters[0].frames_rejected >= 1 ? s : undefined;
    });
    expect(rejected.meters[0].rejections.at(-1).reason).toMatch(/CRC/i);
    // What is configured as a secret never reaches the page.
    for (const path of ["api/status", "api/live", "api/loads"])
      expect(await (await fetch(new URL(path, b.url))).text()).not.toContain(MQTT_PASSWORD);
  });

  it("live: the values as the page draws them, and server-sent events as telegrams arrive; followers are capped", async () => {
    const res = await fetch(new URL("api/events", b.url));
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const buf = { text: "" };
    await nextEvent(reader, (e) => e === "hello", buf);
    // Two pages follow at most (web.max_clients: 2): the third is turned away with a reason.
    const second = await fetch(new URL("api/events", b.url));
    const third = await fetch(new URL("api/events", b.url));
    expect(third.status).toBe(503);
    expect(await third.text()).toContain("max_clients");
    await second.body!.cancel();

    b.send(b.telegram(2345));
    const ev = await nextEvent(reader, (e, d) => e === "reading" && d.meter === "home" && d.power === 2345, buf);
    expect(ev.values).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "power_import_w", value: 2345, unit: "W" })]),
    );
    await reader.cancel();
    const live = (await json(b, "api/live")).body;
    expect(live.home.power.at(-1)[1]).toBe(2345);
    // The interval meter's latest full day, as its sensors have it.
    expect(live.texas.values).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "energy_import_last_day_kwh", value: 24 })]),
    );
  });

  it("history: daily energy per tariff from the archive, the hours of a day, and the interval calendar", async () => {
    const d = await json(b, `api/history?meter=home&to=${FIXTURE_DAYS[2]}&days=3`);
    expect(d.status).toBe(200);
    expect(d.body.days.map((r: { day: string }) => r.day)).toEqual(FIXTURE_DAYS);
    // 10 hourly steps on the first day; the next days also get the night's gap in their first hour.
    expect(d.body.days.map((r: { import_kwh: number }) => r.import_kwh)).toEqual([15, 33, 49.5]);
    expect(d.body.days[0].tariffs).toEqual(
      expect.arrayContaining([
        { name: "import_tariff1", kwh: 10 },
        { name: "import_tariff2", kwh: 5 },
      ]),
    );
    expect(d.body.days[0].export_kwh).toBe(0.5);
    // The flat tariff's price (0.25 EUR/kWh) on the day's import.
    expect(d.body.days[0]).toMatchObject({ currency: "EUR", cost: 3.75 });
    const h = await json(b, `api/hours?meter=home&day=${FIXTURE_DAYS[1]}`);
    expect(h.body.hours).toHaveLength(11);
    expect(h.body.hours[1]).toMatchObject({ hour: `${FIXTURE_DAYS[1]}T11:00:00Z`, import_kwh: 3 });

    const c = await json(b, `api/calendar?meter=texas&month=${INTERVAL_MONTH}`);
    const state = Object.fromEntries(c.body.days.map((x: { day: string; state: string }) => [x.day.slice(8), x.state]));
    expect(state).toMatchObject({
      "01": "complete",
      "03": "estimated",
      "04": "missing",
      "05": "revised",
      "11": "partial",
    });
    const texasDays = await json(b, `api/history?meter=texas&to=${INTERVAL_MONTH}-10&days=10`);
    expect(texasDays.body.days[0]).toMatchObject({ day: `${INTERVAL_MONTH}-01`, import_kwh: 24 });

    expect((await json(b, "api/history?meter=nobody")).status).toBe(400);
    expect((await json(b, "api/history?meter=home&to=2026-13-01")).status).toBe(400);
    expect((await json(b, "api/calendar?meter=home")).status).toBe(400);
    // At most 400 days, whatever is asked.
    const long = await json(b, `api/history?meter=home&to=${FIXTURE_DAYS[2]}&days=100000`);
    expect(long.body.from).toBe(new Date(Date.parse(FIXTURE_DAYS[2]!) - 399 * 86_400_000).toISOString().slice(0, 10));
  });

  it("loads: the recommendation and a mode set from the page, which goes out on MQTT like the select's", async () => {
    const list = (await json(b, "api/loads")).body;
    expect(list).toEqual([expect.objectContaining({ id: "boiler", name: "Boiler", meter: "home", power_w: 2000 })]);
    const set = await json(b, "api/loads/mode", post({ id: "boiler", mode: "ON " }));
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ id: "boiler", mode: "on", state: "on", reason: "manual" });
    expect(set.body.timeline.at(-1)).toMatchObject({ on: true, mode: "on" });
    await until(() => loadStates.some((s) => JSON.parse(s).mode === "on"));
    expect((await json(b, "api/loads")).body[0].mode).toBe("on");

    expect((await json(b, "api/loads/mode", post({ id: "boiler", mode: "turbo" }))).status).toBe(400);
    expect((await json(b, "api/loads/mode", post({ id: "kettle", mode: "on" }))).status).toBe(400);
    // A form posted from another site cannot be JSON without asking first: refused.
    expect((await json(b, "api/loads/mode", post({ id: "boiler", mode: "off" }, "text/plain"))).status).toBe(415);
    expect((await json(b, "api/loads")).body[0].mode).toBe("on");
    await json(b, "api/loads/mode", post({ id: "boiler", mode: "auto" }));
  });

  it("decode: what a pasted telegram holds, why a damaged one is refused, and bounds", async () => {
    const ok = await json(b, "api/decode", post({ format: "dsmr", text: b.telegram(812).toString("latin1") }));
    expect(ok.status).toBe(200);
    expect(ok.body.items[0].ok).toBe(true);
    expect(JSON.stringify(ok.body.items[0].json)).toContain("812");
    const bad = await json(
      b,
      "api/decode",
      post({ format: "dsmr", text: corrupt(b.telegram(812)).toString("latin1") }),
    );
    expect(bad.body.items).toEqual([
      { ok: false, reason: expect.stringMatching(/CRC/i), hint: expect.stringContaining("cable") },
    ]);
    const huge = await json(b, "api/decode", post({ format: "dsmr", text: "x".repeat(70_000) }));
    expect(huge.status).toBe(413);
    const wayTooBig = await fetch(new URL("api/decode", b.url), post({ format: "dsmr", text: "x".repeat(300_000) }));
    expect(wayTooBig.status).toBe(413);
    expect((await json(b, "api/decode", post({ format: "nope", text: "x" }))).status).toBe(400);
    expect((await json(b, "api/decode", post({ format: "dsmr", text: "x", key: "not hex" }))).status).toBe(400);
    const raven = await json(b, "api/decode", post({ format: "raven", text: "<InstantaneousDemand><Demand>0x" }));
    expect(raven.status).toBe(200);
    // HAN frames are pasted as hex; noise is no reading.
    const han = await json(b, "api/decode", post({ format: "han", text: "7e a0 07 01 02 03 04 05 7e" }));
    expect(han.status).toBe(200);
    expect(han.body.items.filter((i: { ok: boolean }) => i.ok)).toEqual([]);
  });
});

describe("frames as the status view shows them", () => {
  it("keeps a text telegram as it is and shows a binary frame as hex", () => {
    expect(printable("/ISK5\\2M550T\r\n!1A2B\r\n")).toBe("/ISK5\\2M550T\r\n!1A2B\r\n");
    const frame = Buffer.concat([Buffer.from([0x7e, 0xa0, 0x1c]), Buffer.alloc(15, 0x41)]).toString("latin1");
    expect(printable(frame)).toBe("7e a0 1c 41 41 41 41 41 41 41 41 41 41 41 41 41\n41 41");
  });
});

describe("web access: web.auth and ingress", () => {
  const log = createLogger("web-test");

  it("hashes passwords with scrypt and the config takes only the hash", () => {
    const hash = hashPassword("correct horse");
    expect(hash).toMatch(/^scrypt\$/);
    expect(verifyPassword("correct horse", hash)).toBe(true);
    expect(verifyPassword("correct hors", hash)).toBe(false);
    const base = { meters: [{ id: "home", type: "dsmr", port: "/dev/ttyUSB0" }] };
    expect(
      parseConfig({ ...base, web: { port: 8099, auth: { user: "me", password_hash: hash } } }).web?.auth?.user,
    ).toBe("me");
    expect(() => parseConfig({ ...base, web: { port: 8099, auth: { user: "me", password_hash: "hunter2" } } })).toThrow(
      /web\.auth\.password_hash/,
    );
  });

  it("asks for the user and password, except at /health", async () => {
    const server = new WebServer(
      { port: 0, host: "127.0.0.1", auth: { user: "me", password_hash: hashPassword("pw") } },
      log,
    );
    server.get("/health", (_q, res) => sendJson(res, 200, { status: "ok" }), { open: true });
    server.get("/api/status", (_q, res) => sendJson(res, 200, { fine: true }));
    await server.start();
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const none = await fetch(`${base}/api/status`);
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toContain("Basic");
      const basic = (u: string, p: string) => ({
        headers: { authorization: `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}` },
      });
      expect((await fetch(`${base}/api/status`, basic("me", "wrong"))).status).toBe(401);
      expect((await fetch(`${base}/api/status`, basic("you", "pw"))).status).toBe(401);
      expect((await fetch(`${base}/api/status`, basic("me", "pw"))).status).toBe(200);
      expect((await fetch(`${base}/health`)).status).toBe(200);
      // A flood of guesses: at most 5 checked a second, the rest refused unchecked; the right password, once
      // accepted, is remembered and still gets in.
      const started = Date.now();
      const guesses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => fetch(`${base}/api/status`, basic("me", `guess${i}`))),
      );
      expect(guesses.every((r) => r.status === 401)).toBe(true);
      expect(Date.now() - started).toBeLessThan(5000);
      expect((await fetch(`${base}/api/status`, basic("me", "pw"))).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it("with ingress, answers only the Supervisor's address, and /health to anyone", async () => {
    const supervisorOnly = new WebServer({ port: 0, host: "127.0.0.1", ingress: true }, log);
    const fromLoopback = new WebServer({ port: 0, host: "127.0.0.1", ingress: true }, log, {
      ingressFrom: ["127.0.0.1"],
    });
    for (const s of [supervisorOnly, fromLoopback]) {
      s.get("/health", (_q, res) => sendJson(res, 200, { status: "ok" }), { open: true });
      s.get("/", (_q, res) => sendJson(res, 200, { page: true }));
      await s.start();
    }
    try {
      const a = `http://127.0.0.1:${supervisorOnly.port}`;
      expect((await fetch(`${a}/`)).status).toBe(403);
      expect((await fetch(`${a}/health`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${fromLoopback.port}/`)).status).toBe(200);
    } finally {
      await supervisorOnly.stop();
      await fromLoopback.stop();
    }
  });
});
