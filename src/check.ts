import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { addonOptionsFound, loadAddonConfig } from "./addon/index.js";
import { Bus } from "./bus.js";
import { loadConfig } from "./config/load.js";
import type { Config, MeterConfig } from "./config/schema.js";
import type { MeterInfo, Reading } from "./model/types.js";
import { describeHaUrl, HaClient } from "./outputs/statistics/ha.js";
import { createSource } from "./sources/index.js";
import { describeImapError, imapClient } from "./sources/smt/imap.js";
import {
  implausible,
  listsOfAttributes,
  numberOf,
  PriceFeed,
  parsePath,
  readMessage,
  unitHint,
} from "./tariffs/dynamic.js";
import { MAX_ENTITY_BYTES, MAX_PRICE_MESSAGE_BYTES } from "./tariffs/price-sources.js";
import { type DynamicPriceConfig, isDynamic } from "./tariffs/schema.js";
import { systemClock } from "./util/clock.js";
import { type Logger, oneLine, quote, redact } from "./util/log.js";

/**
 * `meter2mqtt check`: the configuration, then every part of the set-up tried for real with a short timeout, one line
 * per part with what is wrong and what to do about it. Live meters are read through the bridge's own code (auto baud,
 * decryption included); the broker, mailbox, portal, Home Assistant and influx endpoint are logged in to.
 * Exit 0 when every part passes.
 */
export interface CheckResult {
  part: string;
  ok: boolean;
  detail: string;
}

const LIVE = new Set(["dsmr", "raven", "han"]);

export async function runCheck(
  args: string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: "string", short: "c" }, wait: { type: "string" } },
    strict: true,
  });
  const wait = values.wait === undefined ? 30 : Number(values.wait);
  if (!Number.isFinite(wait) || wait <= 0 || wait > 600) throw new Error("--wait expects seconds, 1 to 600");
  const { config, source } =
    values.config === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(values.config);
  out(`ok   configuration: ${source} (${config.meters.length} meter(s))`);
  const results = await checkAll(config, { waitMs: wait * 1000 });
  for (const r of results) out(`${r.ok ? "ok  " : "FAIL"} ${r.part}: ${oneLine(redact(r.detail))}`);
  const failed = results.filter((r) => !r.ok).length;
  out(failed === 0 ? "every part works" : `${failed} part(s) need attention`);
  return failed === 0 ? 0 : 1;
}

/** Every part at once (the meters take longest), in the order of the configuration. */
export async function checkAll(cfg: Config, opts: { waitMs: number }): Promise<CheckResult[]> {
  const checks: Promise<CheckResult>[] = [checkMqtt(cfg)];
  for (const m of cfg.meters) {
    if (LIVE.has(m.type)) checks.push(checkLiveMeter(m, opts.waitMs));
    if (m.type === "smt" && m.imap) checks.push(checkImap(m.id, m.imap));
    if (m.type === "smarthub") checks.push(checkSmarthub(m));
  }
  const ha = cfg.homeassistant;
  if (ha.statistics || ha.url || ha.token) checks.push(checkHomeAssistant(ha.url, ha.token));
  if (cfg.influx) checks.push(checkInflux(cfg.influx));
  checks.push(...checkPrices(cfg, opts.waitMs));
  return Promise.all(checks);
}

/** Each dynamic price's source asked once. */
export function checkPrices(cfg: Config, waitMs: number): Promise<CheckResult>[] {
  const checks: Promise<CheckResult>[] = [];
  for (const [name, t] of Object.entries(cfg.tariffs))
    for (const dir of ["import", "export"] as const) {
      const p = t[dir];
      if (t.type === "dynamic" && isDynamic(p)) checks.push(checkPrice(cfg, `tariffs.${name}.${dir}`, p, waitMs));
    }
  return checks;
}

/** What a price source gives now: a dynamic tariff's entity or topic asked once. */
async function checkPrice(cfg: Config, key: string, p: DynamicPriceConfig, waitMs: number): Promise<CheckResult> {
  const part = `price ${key} (${p.entity ?? p.mqtt?.topic})`;
  const feed = new PriceFeed(p, Date.now);
  const per = (value: number): string => {
    const price = feed.convert(value);
    return `${price} per kWh${p.multiply !== 1 || p.add !== 0 ? " after multiply and add" : ""}`;
  };
  // The live path's rule, naming the key to set.
  const tooBig = (value: number): string | undefined =>
    implausible(feed, value)?.replace("set multiply", `set ${key}.multiply`);
  if (p.entity) {
    const { url, token } = cfg.homeassistant;
    if (!url || !token)
      return { part, ok: false, detail: `set homeassistant.url and homeassistant.token to read ${p.entity}` };
    let client: HaClient | undefined;
    try {
      client = await HaClient.connect(url, token, { timeoutMs: 10_000, maxPayload: MAX_ENTITY_BYTES });
      const first = new Promise<unknown>((resolve) => {
        void client?.subscribe({ type: "subscribe_entities", entity_ids: [p.entity] }, resolve).catch(resolve);
      });
      const event = (await withTimeout(first, 10_000, describeHaUrl(url))) as {
        a?: Record<string, { s?: unknown; a?: Record<string, unknown> }>;
      };
      if (event instanceof Error) return { part, ok: false, detail: event.message };
      const state = event?.a?.[p.entity];
      if (!state)
        return {
          part,
          ok: false,
          detail: `Home Assistant has no entity ${p.entity}: check ${key}.entity (Settings → Entities shows the ids)`,
        };
      const hint = unitHint(state.a?.unit_of_measurement, p.multiply);
      if (hint)
        return { part, ok: false, detail: `${p.entity}: ${hint.replace("set multiply", `set ${key}.multiply`)}` };
      const slots = listsOfAttributes(state.a ?? {}, p.attribute);
      const value = numberOf(state.s);
      const unit = typeof state.a?.unit_of_measurement === "string" ? ` ${state.a.unit_of_measurement}` : "";
      const listed = slots.length > 0 ? `; ${slots.length} prices listed in its attributes` : "";
      if (value === undefined && slots.length === 0)
        return { part, ok: false, detail: `${p.entity} is ${quote(String(state.s), 80)}, not a price` };
      const wrong = value === undefined ? undefined : tooBig(value);
      if (wrong) return { part, ok: false, detail: wrong };
      return {
        part,
        ok: true,
        detail: `${value === undefined ? `${p.entity} has no price now` : `${p.entity} is ${value}${unit}: ${per(value)}`}${listed}`,
      };
    } catch (err) {
      return { part, ok: false, detail: (err as Error).message };
    } finally {
      await client?.close();
    }
  }
  const topic = p.mqtt?.topic as string;
  const ms = Math.min(waitMs, 10_000);
  let client: mqtt.MqttClient | undefined;
  try {
    client = await connectOnce(cfg.mqtt, 8000, cfg.mqtt.url.replace(/\/\/[^@/]*@/, "//"), `-price-${key}`);
    const c = client;
    const message = new Promise<string>((resolve) => c.on("message", (_t, payload) => resolve(payload.toString())));
    await client.subscribeAsync(topic, { qos: 1 });
    const payload = await withTimeout(message, ms, topic).catch(() => undefined);
    if (payload === undefined)
      return {
        part,
        ok: false,
        detail: `nothing on ${topic} in ${ms / 1000} s: the fallback ${p.fallback} applies until a price comes (publish it retained to have it at once)`,
      };
    if (payload.length > MAX_PRICE_MESSAGE_BYTES)
      return {
        part,
        ok: false,
        detail: `a message of ${payload.length} bytes on ${topic}: more than a price topic takes`,
      };
    const m = readMessage(payload, p.mqtt?.path === undefined ? undefined : parsePath(p.mqtt.path));
    if (m.kind === "none") return { part, ok: false, detail: `${m.why}: ${quote(payload, 80)}` };
    if (m.kind === "list") return { part, ok: true, detail: `${topic} lists ${m.slots.length} prices` };
    const wrong = tooBig(m.value);
    return wrong
      ? { part, ok: false, detail: wrong }
      : { part, ok: true, detail: `${topic} gives ${m.value}: ${per(m.value)}` };
  } catch (err) {
    return { part, ok: false, detail: `cannot read ${topic}: ${(err as Error).message}` };
  } finally {
    await client?.endAsync().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from ${what} in ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** One connection to the configured broker, without reconnecting, given up after `ms`. */
function connectOnce(m: Config["mqtt"], ms: number, what: string, id = ""): Promise<mqtt.MqttClient> {
  return withTimeout(
    mqtt.connectAsync(m.url, {
      username: m.username,
      password: m.password,
      reconnectPeriod: 0,
      connectTimeout: ms,
      rejectUnauthorized: m.reject_unauthorized,
      clientId: `meter2mqtt-check-${process.pid}${id}`,
    }),
    ms + 1000,
    what,
  );
}

async function checkMqtt(cfg: Config): Promise<CheckResult> {
  const part = "MQTT broker";
  const where = cfg.mqtt.url.replace(/\/\/[^@/]*@/, "//");
  try {
    const client = await connectOnce(cfg.mqtt, 8000, where);
    await client.endAsync();
    return {
      part,
      ok: true,
      detail: `${where} accepts the login${cfg.mqtt.username ? ` of ${cfg.mqtt.username}` : ""}`,
    };
  } catch (err) {
    const e = err as Error & { code?: number | string };
    const refused = e.code === 4 || e.code === 5 || /not authori[sz]ed|bad user name or password/i.test(e.message);
    return {
      part,
      ok: false,
      detail: refused
        ? `${where} refused the login: check mqtt.username and mqtt.password (in the app, leave them empty to use the Mosquitto app's)`
        : `cannot reach ${where} (${e.message}): check mqtt.url and that the broker runs`,
    };
  }
}

/** A logger that keeps warnings and errors, so the check can say why a meter gave nothing. */
function keepingLog(lines: string[]): Logger {
  const make = (): Logger => ({
    debug: () => {},
    info: () => {},
    warn: (m) => void lines.push(typeof m === "function" ? m() : m),
    error: (m) => void lines.push(typeof m === "function" ? m() : m),
    child: () => make(),
  });
  return make();
}

async function checkLiveMeter(m: MeterConfig, waitMs: number): Promise<CheckResult> {
  const part = `meter ${m.id} (${m.type}${"port" in m ? ` on ${m.port}` : ""})`;
  const bus = new Bus();
  const problems: string[] = [];
  let reading: Reading | undefined;
  let info: MeterInfo | undefined;
  let rejected = 0;
  const got = new Promise<void>((resolve) => {
    bus.subscribe("check", "reading", (r) => {
      reading ??= r;
      resolve();
    });
  });
  bus.subscribe("check", "meterInfo", (i) => void (info = i));
  bus.subscribe("check", "status", (s) => void (rejected = s.framesRejected));
  // Replays finish on their own; live ports are given `waitMs`.
  const cfg = "replay_loop" in m ? { ...m, replay_interval_ms: 0 } : m;
  const source = await createSource(cfg as MeterConfig, bus, { clock: systemClock, log: keepingLog(problems) });
  source.start();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([got, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
  clearTimeout(timer);
  await source.stop().catch(() => {});
  bus.unsubscribeAll("check");
  if (reading) {
    const what = info ? `${info.manufacturer ?? ""} ${info.model ?? ""}`.trim() : "the meter";
    const encrypted = "key" in m && m.key ? ", key accepted" : "";
    return { part, ok: true, detail: `valid data from ${what}${encrypted}` };
  }
  const last = problems.at(-1);
  if (last && /no key is set/.test(last)) return { part, ok: false, detail: last.replace(/^meter \S+: /, "") };
  if (last && /cannot open|lost/.test(last))
    return {
      part,
      ok: false,
      detail: `${last}: check the device path, that the cable is plugged in, and (in the app) that the device is selected`,
    };
  if (rejected > 0)
    return {
      part,
      ok: false,
      detail: `${rejected} frame(s) arrived but none was valid${last ? ` (last: ${last})` : ""}: check the baud rate${"key" in m ? ", and the key and aad if the meter encrypts" : ""}`,
    };
  return {
    part,
    ok: false,
    detail: `the port opens but nothing valid arrived in ${Math.round(waitMs / 1000)} s: check the cable and that the meter's customer port is switched on (some grid operators switch it on only on request)`,
  };
}

async function checkImap(
  id: string,
  s: NonNullable<Extract<MeterConfig, { type: "smt" }>["imap"]>,
): Promise<CheckResult> {
  const part = `meter ${id} mailbox (${s.user} at ${s.host})`;
  const client = imapClient(s, 10_000);
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (err) {
    const e = describeImapError(err, s);
    return {
      part,
      ok: false,
      detail:
        e.kind === "auth"
          ? "the mail server refused the login: check imap.user and imap.password (with two-step verification, an app password)"
          : `${e.message}: check imap.host, imap.port and imap.tls`,
    };
  }
  try {
    const lock = await client.getMailboxLock(s.mailbox);
    try {
      const found = await client.search({ from: s.sender }, { uid: true });
      const n = Array.isArray(found) ? found.length : 0;
      return n > 0
        ? { part, ok: true, detail: `login works; ${n} email(s) from ${s.sender} in ${s.mailbox}` }
        : {
            part,
            ok: false,
            detail: `login works but no email from ${s.sender} in ${s.mailbox}: check imap.sender against the From of an SMT email, and that the daily report is subscribed`,
          };
    } finally {
      lock.release();
    }
  } catch (err) {
    return {
      part,
      ok: false,
      detail: `login works but the mailbox "${s.mailbox}" cannot be opened: ${(err as Error).message}`,
    };
  } finally {
    await client.logout().catch(() => {});
  }
}

async function checkSmarthub(m: Extract<MeterConfig, { type: "smarthub" }>): Promise<CheckResult> {
  const part = `meter ${m.id} portal (${m.base_url})`;
  const { clientFor } = await import("./sources/smarthub/index.js");
  const client = clientFor(m, { log: keepingLog([]), retryDelaysMs: [], timeoutMs: 15_000 });
  try {
    await client.login();
    return { part, ok: true, detail: `login of ${m.username} works` };
  } catch (err) {
    return { part, ok: false, detail: `${(err as Error).message}` };
  } finally {
    client.close();
  }
}

async function checkHomeAssistant(url: string | undefined, token: string | undefined): Promise<CheckResult> {
  const part = "Home Assistant";
  if (!url || !token)
    return { part, ok: false, detail: "homeassistant.url and homeassistant.token must both be set for statistics" };
  let client: HaClient | undefined;
  try {
    client = await HaClient.connect(url, token, { timeoutMs: 10_000 });
    await client.command({ type: "recorder/info" });
    return {
      part,
      ok: true,
      detail: `${describeHaUrl(url)} accepts the token (Home Assistant ${client.haVersion}) and the recorder answers`,
    };
  } catch (err) {
    return { part, ok: false, detail: (err as Error).message };
  } finally {
    await client?.close();
  }
}

async function checkInflux(c: NonNullable<Config["influx"]>): Promise<CheckResult> {
  const { authHeader, describeUrl, writeUrl } = await import("./outputs/influx/writer.js");
  const part = `influx (${describeUrl(c.url)})`;
  const headers: Record<string, string> = { "Content-Type": "text/plain; charset=utf-8" };
  const auth = authHeader(c);
  if (auth) headers.Authorization = auth;
  try {
    // An empty batch: the server checks the address, database or bucket and the credentials, and stores nothing.
    const res = await fetch(writeUrl(c), { method: "POST", headers, body: "", signal: AbortSignal.timeout(10_000) });
    const text = (await res.text().catch(() => "")).replace(/\s+/g, " ").slice(0, 200);
    if (res.ok) return { part, ok: true, detail: "the endpoint accepts a write (nothing was stored)" };
    const why =
      res.status === 401 || res.status === 403
        ? "the credentials were refused: check influx.token (or username and password)"
        : res.status === 404
          ? "not found: check influx.url, influx.version and the database or bucket"
          : `answered ${res.status}${text ? `: ${text}` : ""}`;
    return { part, ok: false, detail: why };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { part, ok: false, detail: `cannot reach it (${e.cause?.code ?? e.message}): check influx.url` };
  }
}

/**
 * `meter2mqtt health`: asks the running bridge how it is, for Docker's HEALTHCHECK and a systemd timer: `GET /health`
 * when the web server is on, else the retained `<base>/bridge/health` message. Exit 0 when it is ok and recent.
 */
export async function runHealth(
  args: string[],
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" } }, strict: true });
  const { config } =
    values.config === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(values.config);
  let report: { status?: string; time?: string; problems?: string[] } | undefined;
  if (config.web) {
    const host = config.web.host === "0.0.0.0" || config.web.host === "::" ? "127.0.0.1" : config.web.host;
    try {
      const res = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${config.web.port}/health`, {
        signal: AbortSignal.timeout(5000),
      });
      report = (await res.json()) as typeof report;
    } catch (err) {
      out(`failing: the bridge does not answer on port ${config.web.port} (${(err as Error).message})`);
      return 1;
    }
  } else {
    const topic = `${config.mqtt.base_topic}/bridge/health`;
    try {
      const client = await connectOnce(config.mqtt, 5000, "the broker");
      const got = new Promise<string>((resolve) =>
        client.on("message", (t, payload) => {
          if (t === topic) resolve(payload.toString("utf8", 0, Math.min(payload.length, 64 * 1024)));
        }),
      );
      await client.subscribeAsync(topic, { qos: 0 });
      const text = await withTimeout(got, 5000, topic).finally(() => client.endAsync().catch(() => {}));
      report = JSON.parse(text) as typeof report;
    } catch (err) {
      out(`failing: no health report on ${topic} (${(err as Error).message})`);
      return 1;
    }
  }
  const age = report?.time ? (Date.now() - Date.parse(report.time)) / 1000 : Number.POSITIVE_INFINITY;
  if (!(age < 120)) {
    out(
      `failing: the last health report is ${Number.isFinite(age) ? `${Math.round(age)} s` : "of unknown"} old: is the bridge running?`,
    );
    return 1;
  }
  if (report?.status !== "ok") {
    out(`failing: ${(report?.problems ?? []).map((p) => oneLine(p)).join("; ") || "unknown"}`);
    return 1;
  }
  out("ok");
  return 0;
}
