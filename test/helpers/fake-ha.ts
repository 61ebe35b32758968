/**
 * A local stand-in for Home Assistant's websocket API that enforces the rules the real one applies to long-term
 * statistics (homeassistant/components/websocket_api and recorder: websocket_api.py, statistics.py), and keeps
 * what it is given, so tests can compare the sums HA would hold:
 *   - the handshake: auth_required → {type: auth, access_token} → auth_ok | auth_invalid (and the socket closed);
 *   - command ids: integers that increase, each answered by a `result` with the same id;
 *   - recorder/import_statistics: the voluptuous schema of metadata and rows (no unknown keys); from 2025.11
 *     `mean_type` (0/1/2) and `unit_class` accepted and, as from 2026.11, required; before, `has_mean` required;
 *     an external statistic id matching `<domain>:<object>` slugs with `source` equal to the domain; every row
 *     start with a UTC offset and on the hour; `unit_class` energy only with an energy unit;
 *   - recorder/statistics_during_period: rows with start_time ≤ start < end_time, `start`/`end` in ms;
 *   - rows imported again at the same start replace the old ones, as the recorder does;
 *   - subscribe_entities (websocket_api/commands.py handle_subscribe_entities): entity_ids validated as entity ids,
 *     the result, then one event `{a: {entity_id: compressed state}}` with the entities that exist, then per change
 *     `{c: {entity_id: {"+": {s?, a: changed attributes, c, lu}, "-": {a: removed attribute names}}}}` and
 *     `{r: [entity_id]}` when an entity goes (messages.py's compressed states: s, a, c, lc, lu).
 * Used by the SmartHub source's tests too.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

export const VALID_STATISTIC_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_):(?!_)[\da-z_]+(?<!_)$/;
const ENERGY_UNITS = new Set([
  "cal",
  "kcal",
  "Mcal",
  "Gcal",
  "J",
  "kJ",
  "MJ",
  "GJ",
  "mWh",
  "Wh",
  "kWh",
  "MWh",
  "GWh",
  "TWh",
]);
const PERIODS = new Set(["5minute", "hour", "day", "week", "month"]);
const TYPES = new Set(["change", "last_reset", "max", "mean", "min", "state", "sum"]);

export interface StatRow {
  start: number;
  state?: number;
  sum?: number;
}

export interface FakeHa {
  url: string;
  token: string;
  version: string;
  /** Every command received after auth, in order. */
  readonly commands: Record<string, unknown>[];
  /** Errors sent back, in order: `code: message`. */
  readonly errors: string[];
  /** Auth attempts that failed. */
  authFailures: number;
  metadata(id: string): Record<string, unknown> | undefined;
  /** Stored rows of a statistic, oldest first. */
  rows(id: string): StatRow[];
  /** Puts rows in as if imported earlier (HA's own history for the statistic). */
  seed(id: string, metadata: Record<string, unknown>, rows: StatRow[]): void;
  /** Drops rows of a statistic from `from` on (a database restored from an older backup). */
  truncate(id: string, from: number): void;
  /** Sets an entity's state and attributes (undefined state: the entity is removed), telling subscribers. */
  setState(entityId: string, state: string | undefined, attributes?: Record<string, unknown>): void;
  /** Ends every client's connection, as an HA restart does; with `refuse`, new ones too until `accept()`. */
  dropClients(opts?: { refuse?: boolean }): void;
  accept(): void;
  close(): Promise<void>;
}

type Json = Record<string, unknown>;
class Invalid extends Error {}

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);

function only(o: Json, allowed: string[], where: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) throw new Invalid(`extra keys not allowed @ data['${where}']['${k}']`);
}

/** cv.datetime: an ISO 8601 string; returns its ms and whether it carried an offset. */
function datetime(v: unknown, where: string): { ms: number; aware: boolean } {
  if (typeof v !== "string") throw new Invalid(`expected datetime @ ${where}`);
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
  if (!m) throw new Invalid(`invalid datetime @ ${where}`);
  const ms = Date.parse(`${m[1]}T${m[2]}${m[3] ?? "Z"}`);
  if (!Number.isFinite(ms)) throw new Invalid(`invalid datetime @ ${where}`);
  return { ms, aware: m[3] !== undefined };
}

function atLeast(version: string, year: number, month: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return true;
  return Number(m[1]) > year || (Number(m[1]) === year && Number(m[2]) >= month);
}

export async function startFakeHa(opts: { token?: string; version?: string } = {}): Promise<FakeHa> {
  const token = opts.token ?? "long-lived-token-3f9a";
  const version = opts.version ?? "2026.5.1";
  const modern = atLeast(version, 2025, 11);
  const stats = new Map<string, { metadata: Json; rows: Map<number, StatRow> }>();
  const commands: Json[] = [];
  const errors: string[] = [];
  const server: Server = createServer();
  const wss = new WebSocketServer({ server, path: "/api/websocket" });
  const state = { authFailures: 0 };

  const importStatistics = (msg: Json): void => {
    only(msg, ["id", "type", "metadata", "stats"], "");
    const meta = msg.metadata;
    if (!isObject(meta)) throw new Invalid("required key not provided @ data['metadata']");
    const required = ["has_sum", "name", "source", "statistic_id", "unit_of_measurement"];
    const optional = modern ? ["has_mean", "mean_type", "unit_class"] : [];
    if (!modern) required.push("has_mean");
    // HA 2026.11 makes these two required; enforcing it now keeps the bridge working then.
    if (modern) required.push("mean_type", "unit_class");
    for (const k of required)
      if (!(k in meta)) throw new Invalid(`required key not provided @ data['metadata']['${k}']`);
    only(meta, [...required, ...optional], "metadata");
    if (typeof meta.has_sum !== "boolean") throw new Invalid("expected bool @ data['metadata']['has_sum']");
    if ("has_mean" in meta && typeof meta.has_mean !== "boolean") throw new Invalid("expected bool @ has_mean");
    if (meta.name !== null && typeof meta.name !== "string") throw new Invalid("expected str @ name");
    if (typeof meta.source !== "string") throw new Invalid("expected str @ source");
    if (typeof meta.statistic_id !== "string") throw new Invalid("expected str @ statistic_id");
    if (meta.unit_of_measurement !== null && typeof meta.unit_of_measurement !== "string")
      throw new Invalid("expected str @ unit_of_measurement");
    if ("mean_type" in meta && ![0, 1, 2].includes(meta.mean_type as number))
      throw new Invalid("value must be one of [0, 1, 2] @ data['metadata']['mean_type']");
    if ("unit_class" in meta && meta.unit_class !== null && typeof meta.unit_class !== "string")
      throw new Invalid("expected str @ unit_class");
    if (!Array.isArray(msg.stats)) throw new Invalid("required key not provided @ data['stats']");
    const rows: StatRow[] = [];
    msg.stats.forEach((r, i) => {
      if (!isObject(r)) throw new Invalid(`expected a dictionary @ data['stats'][${i}]`);
      only(r, ["start", "mean", "min", "max", "last_reset", "state", "sum"], `stats'][${i}`);
      if (!("start" in r)) throw new Invalid(`required key not provided @ data['stats'][${i}]['start']`);
      for (const k of ["mean", "min", "max", "state", "sum"])
        if (k in r && !isNumber(r[k])) throw new Invalid(`expected float @ data['stats'][${i}]['${k}']`);
      const start = datetime(r.start, `data['stats'][${i}]['start']`);
      // statistics.py: the recorder's own checks, raised as HomeAssistantError.
      if (!start.aware) throw new Error("Naive timestamp");
      if (start.ms % 3_600_000 !== 0) throw new Error("Invalid timestamp");
      const row: StatRow = { start: start.ms };
      if ("state" in r) row.state = r.state as number;
      if ("sum" in r) row.sum = r.sum as number;
      rows.push(row);
    });
    const id = meta.statistic_id;
    if (id.includes(".")) throw new Error("Invalid statistic_id");
    if (!VALID_STATISTIC_ID.test(id)) throw new Error("Invalid statistic_id");
    if (!meta.source || meta.source !== id.split(":")[0]) throw new Error("Invalid source");
    if (meta.unit_class === "energy" && !ENERGY_UNITS.has(String(meta.unit_of_measurement)))
      throw new Error(`Unsupported unit_class: 'energy' for unit ${String(meta.unit_of_measurement)}`);
    if (meta.unit_class !== undefined && meta.unit_class !== null && meta.unit_class !== "energy")
      throw new Error(`Unsupported unit_class: '${String(meta.unit_class)}'`);
    const entry = stats.get(id) ?? { metadata: meta, rows: new Map() };
    entry.metadata = meta;
    for (const r of rows) entry.rows.set(r.start, r);
    stats.set(id, entry);
  };

  const duringPeriod = (msg: Json): Json => {
    only(msg, ["id", "type", "start_time", "end_time", "statistic_ids", "period", "units", "types"], "");
    const start = datetime(msg.start_time, "start_time").ms;
    const end = msg.end_time === undefined ? Number.POSITIVE_INFINITY : datetime(msg.end_time, "end_time").ms;
    if (!Array.isArray(msg.statistic_ids) || msg.statistic_ids.length === 0)
      throw new Invalid("length of value must be at least 1 @ data['statistic_ids']");
    if (!PERIODS.has(msg.period as string)) throw new Invalid("value must be one of the periods @ data['period']");
    const types = (msg.types as string[] | undefined) ?? [...TYPES];
    for (const t of types) if (!TYPES.has(t)) throw new Invalid(`unknown type ${t} @ data['types']`);
    if (msg.period !== "hour") throw new Error("only hour is kept by this stand-in");
    const out: Json = {};
    for (const id of msg.statistic_ids as string[]) {
      const rows = [...(stats.get(id)?.rows.values() ?? [])]
        .filter((r) => r.start >= start && r.start < end)
        .sort((a, b) => a.start - b.start)
        .map((r) => {
          const o: Json = { start: r.start, end: r.start + 3_600_000 };
          if (types.includes("sum")) o.sum = r.sum ?? null;
          if (types.includes("state")) o.state = r.state ?? null;
          return o;
        });
      if (rows.length > 0) out[id] = rows;
    }
    return out;
  };

  const VALID_ENTITY_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;
  const entities = new Map<string, { s: string; a: Json; lc: number; lu: number; c: string }>();
  const listeners = new Set<(id: string, before: Json | undefined, after: Json | undefined) => void>();
  let context = 0;
  let refusing = false;
  const compressed = (e: { s: string; a: Json; lc: number; lu: number; c: string }): Json => ({
    s: e.s,
    a: e.a,
    c: e.c,
    lc: e.lc,
    ...(e.lu !== e.lc ? { lu: e.lu } : {}),
  });
  const setState = (entityId: string, value: string | undefined, attributes: Json = {}): void => {
    const before = entities.get(entityId);
    const now = Date.now() / 1000;
    if (value === undefined) {
      entities.delete(entityId);
      for (const l of listeners) l(entityId, before, undefined);
      return;
    }
    // HA writes no state_changed when neither the state nor an attribute changed.
    if (before && before.s === value && JSON.stringify(before.a) === JSON.stringify(attributes)) return;
    const after = {
      s: value,
      a: { ...attributes },
      lc: before && before.s === value ? before.lc : now,
      lu: now,
      c: `01J${String(++context).padStart(23, "0")}`,
    };
    entities.set(entityId, after);
    for (const l of listeners) l(entityId, before, after);
  };

  wss.on("connection", (ws: WebSocket) => {
    if (refusing) {
      ws.terminate();
      return;
    }
    let authed = false;
    const mine: typeof listeners extends Set<infer L> ? L[] : never = [];
    ws.on("close", () => {
      for (const l of mine) listeners.delete(l);
    });
    let lastId = 0;
    const send = (m: Json): void => ws.send(JSON.stringify(m));
    send({ type: "auth_required", ha_version: version });
    ws.on("message", (data) => {
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        ws.close(1003);
        return;
      }
      if (!isObject(msg)) {
        ws.close(1003);
        return;
      }
      if (!authed) {
        if (msg.type === "auth" && msg.access_token === token) {
          authed = true;
          send({ type: "auth_ok", ha_version: version });
        } else {
          state.authFailures++;
          send({
            type: "auth_invalid",
            message: msg.type === "auth" ? "Invalid access token or password" : "Auth message incorrectly formatted",
          });
          ws.close();
        }
        return;
      }
      commands.push(msg);
      const id = msg.id;
      const fail = (code: string, message: string): void => {
        errors.push(`${code}: ${message}`);
        send({ id, type: "result", success: false, error: { code, message } });
      };
      if (typeof id !== "number" || !Number.isInteger(id))
        return fail("invalid_format", "Message incorrectly formatted.");
      if (id <= lastId) return fail("id_reuse", "Identifier values have to increase.");
      lastId = id;
      try {
        if (msg.type === "recorder/import_statistics") {
          importStatistics(msg);
          send({ id, type: "result", success: true, result: null });
        } else if (msg.type === "recorder/statistics_during_period") {
          send({ id, type: "result", success: true, result: duringPeriod(msg) });
        } else if (msg.type === "recorder/info") {
          // recorder/websocket_api.py ws_info: the recorder's state.
          only(msg, ["id", "type"], "recorder/info");
          const result = {
            backlog: 0,
            max_backlog: 65000,
            migration_in_progress: false,
            migration_is_live: false,
            recording: true,
            thread_running: true,
          };
          send({ id, type: "result", success: true, result });
        } else if (msg.type === "subscribe_entities") {
          only(msg, ["id", "type", "entity_ids"], "subscribe_entities");
          const raw = msg.entity_ids;
          const ids = typeof raw === "string" ? raw.split(",").map((x) => x.trim()) : raw;
          if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string" || !VALID_ENTITY_ID.test(x)))
            throw new Invalid("Entity ID is an invalid entity ID for dictionary value @ data['entity_ids']");
          const wanted = new Set(ids as string[]);
          const listener = (eid: string, before: Json | undefined, after: Json | undefined): void => {
            if (wanted.size > 0 && !wanted.has(eid)) return;
            if (!after) {
              send({ id, type: "event", event: { r: [eid] } });
              return;
            }
            const a = after as { s: string; a: Json; lc: number; lu: number; c: string };
            if (!before) {
              send({ id, type: "event", event: { a: { [eid]: compressed(a) } } });
              return;
            }
            const b = before as { s: string; a: Json };
            const plus: Json = { c: a.c, lu: a.lu };
            if (b.s !== a.s) Object.assign(plus, { s: a.s, lc: a.lc });
            const changed: Json = {};
            for (const [k, v] of Object.entries(a.a)) if (JSON.stringify(b.a[k]) !== JSON.stringify(v)) changed[k] = v;
            if (Object.keys(changed).length > 0) plus.a = changed;
            const removed = Object.keys(b.a).filter((k) => !(k in a.a));
            const diff: Json = { "+": plus };
            if (removed.length > 0) diff["-"] = { a: removed };
            send({ id, type: "event", event: { c: { [eid]: diff } } });
          };
          listeners.add(listener);
          mine.push(listener);
          send({ id, type: "result", success: true, result: null });
          const initial: Json = {};
          for (const [eid, e] of entities) if (wanted.size === 0 || wanted.has(eid)) initial[eid] = compressed(e);
          send({ id, type: "event", event: { a: initial } });
        } else if (msg.type === "recorder/list_statistic_ids") {
          const result = [...stats.entries()].map(([sid, s]) => ({ statistic_id: sid, ...s.metadata }));
          send({ id, type: "result", success: true, result });
        } else fail("unknown_command", "Unknown command.");
      } catch (err) {
        if (err instanceof Invalid) fail("invalid_format", err.message);
        else fail("home_assistant_error", (err as Error).message);
      }
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/api/websocket`,
    token,
    version,
    commands,
    errors,
    get authFailures() {
      return state.authFailures;
    },
    set authFailures(n: number) {
      state.authFailures = n;
    },
    metadata: (id) => stats.get(id)?.metadata,
    rows: (id) => [...(stats.get(id)?.rows.values() ?? [])].sort((a, b) => a.start - b.start),
    seed(id, metadata, rows) {
      const entry = stats.get(id) ?? { metadata, rows: new Map() };
      for (const r of rows) entry.rows.set(r.start, r);
      stats.set(id, entry);
    },
    setState,
    dropClients(opts = {}) {
      refusing = opts.refuse === true;
      for (const c of wss.clients) c.terminate();
    },
    accept() {
      refusing = false;
    },
    truncate(id, from) {
      const entry = stats.get(id);
      if (!entry) return;
      for (const k of [...entry.rows.keys()]) if (k >= from) entry.rows.delete(k);
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
