/**
 * Dynamic prices (tariffs with `type: dynamic`): what a price source (an MQTT topic, a Home Assistant entity) says,
 * turned into one price per quarter hour.
 *
 * A quarter hour's price is, in this order:
 *   1. the price a list gave for it (a day's prices in an entity attribute or a JSON list on the topic);
 *   2. the newest single price (a number on the topic, the entity's state), if it came before the quarter ended and
 *      the source has not been silent for longer than `stale_after_minutes` — a price that comes a few seconds after
 *      the hour still prices that hour's first quarter;
 *   3. the configured `fallback`.
 * When a quarter hour has ended its price is settled: it no longer changes, whatever comes later, so that the live
 * cost totals, the archive (table dynamic_prices) and the reports all price that quarter the same.
 */
import { DateTime } from "luxon";
import type { DynamicPriceConfig } from "./schema.js";

export const QUARTER = 900_000;
/** Settled quarters kept in memory (the archive has them all): enough for a reading arriving late after a gap. */
const KEEP_SETTLED_MS = 3 * 86_400_000;
/** Slots taken from one list: three days of quarter hours and a margin. */
export const MAX_LIST_SLOTS = 400;

/** Where a quarter's price came from. */
export type PriceOrigin = "mqtt" | "home_assistant" | "fallback";

export interface SettledPrice {
  /** Start of the quarter hour, UTC ms. */
  start: number;
  price: number;
  origin: PriceOrigin;
}

export interface PriceSlot {
  start: number;
  end: number;
  /** The source's number, before `multiply` and `add`. */
  value: number;
}

const round9 = (x: number): number => Math.round(x * 1e9) / 1e9;

/** Messages kept to judge quarters not yet settled: a day of messages every few seconds is far fewer. */
const MAX_HISTORY = 20_000;

export class PriceFeed {
  readonly origin: Exclude<PriceOrigin, "fallback">;
  /**
   * What the source said and when, oldest first: single prices, and (price undefined) lists and repeats; the last
   * 3 days at most. The newest price is also kept on its own, however old.
   */
  private readonly history: { at: number; price?: number }[] = [];
  private newest?: { at: number; price: number };
  private readonly listed = new Map<number, number>();
  private readonly settledQuarters = new Map<number, SettledPrice>();
  /**
   * Until when the source vouched for its value by being connected (a Home Assistant entity's state is "now"):
   * +Infinity while it is, the moment it went away after.
   */
  private heldUntil = Number.NEGATIVE_INFINITY;
  private readonly listeners: ((p: SettledPrice) => void)[] = [];

  constructor(
    readonly config: DynamicPriceConfig,
    private readonly now: () => number,
  ) {
    this.origin = config.entity !== undefined ? "home_assistant" : "mqtt";
  }

  /** The price per kWh a source number stands for. */
  convert(value: number): number {
    return round9(value * this.config.multiply + this.config.add);
  }

  /** A single price, valid from now on (the quarter hour under way included, unless already settled). */
  offer(value: number, at = this.now()): void {
    const entry = { at, price: this.convert(value) };
    this.newest = entry;
    this.remember(entry);
  }

  /** Prices of slots (whole quarter hours); returns how many quarter hours they priced. */
  offerList(slots: readonly PriceSlot[], at = this.now()): number {
    let n = 0;
    for (const s of slots) {
      const price = this.convert(s.value);
      for (let q = s.start; q < s.end && n < MAX_LIST_SLOTS * 4; q += QUARTER) {
        this.listed.set(q, price);
        n++;
      }
    }
    // Old list entries go once settled; the list is re-sent daily by every source we know.
    for (const q of this.listed.keys()) if (q < at - KEEP_SETTLED_MS) this.listed.delete(q);
    this.heard(at);
    return n;
  }

  /** A message came from the source, even one that repeats the price. */
  heard(at = this.now()): void {
    this.remember({ at });
  }

  /** Connected and vouching for its last value (true), or gone since `at` (false). */
  hold(on: boolean, at = this.now()): void {
    if (on) this.heldUntil = Number.POSITIVE_INFINITY;
    else if (this.heldUntil === Number.POSITIVE_INFINITY) this.heldUntil = at;
  }

  /** Whether the single price is too old to use at `at`. */
  stale(at = this.now()): boolean {
    return this.judgeSingle(Number.POSITIVE_INFINITY, at) === undefined;
  }

  /** When the source last gave a price (UTC ms), or undefined. */
  get lastPriceAt(): number | undefined {
    return this.newest?.at;
  }

  /** The price of the quarter hour `ms` is in, as things stand now; settles the quarter if it has ended. */
  price(ms: number): SettledPrice {
    const start = Math.floor(ms / QUARTER) * QUARTER;
    const done = this.settledQuarters.get(start);
    if (done) return done;
    if (start + QUARTER <= this.now()) return this.settle(start);
    return this.judge(start, this.now());
  }

  /** Fixes the price of the quarter hour starting at `start` (which has ended) and tells the listeners. */
  settle(start: number): SettledPrice {
    const done = this.settledQuarters.get(start);
    if (done) return done;
    const p = this.judge(start, Math.min(this.now(), start + QUARTER));
    this.settledQuarters.set(start, p);
    for (const q of this.settledQuarters.keys()) if (q < start - KEEP_SETTLED_MS) this.settledQuarters.delete(q);
    for (const l of this.listeners) l(p);
    return p;
  }

  onSettled(listener: (p: SettledPrice) => void): void {
    this.listeners.push(listener);
  }

  private remember(entry: { at: number; price?: number }): void {
    const h = this.history;
    h.push(entry);
    // Older messages matter only for quarters not yet settled: the last 3 days, at most MAX_HISTORY messages. Over
    // the limit half of it goes at once, so that a chatty source does not pay for a cut with every message.
    const keepFrom = entry.at - KEEP_SETTLED_MS;
    if (h.length <= MAX_HISTORY && (h[0] as { at: number }).at >= keepFrom) return;
    const atLeast = h.length > MAX_HISTORY ? h.length - MAX_HISTORY / 2 : 0;
    let cut = 0;
    while (cut < h.length - 1 && ((h[cut] as { at: number }).at < keepFrom || cut < atLeast)) cut++;
    h.splice(0, cut);
  }

  /**
   * The newest single price sent before `before`, if the source had spoken within the stale limit of `at` (counting
   * only what it said before `before`); undefined when there is none or it is stale.
   */
  private judgeSingle(before: number, at: number): number | undefined {
    let price: number | undefined;
    let heard: number | undefined;
    for (let i = this.history.length - 1; i >= 0 && price === undefined; i--) {
      const h = this.history[i] as { at: number; price?: number };
      if (h.at >= before) continue;
      heard ??= h.at;
      price = h.price;
    }
    // Older than all that is kept: the newest price, when it came before `before`.
    const n = this.newest;
    if (price === undefined && n && n.at < before) {
      price = n.price;
      heard ??= n.at;
    }
    if (price === undefined || heard === undefined) return undefined;
    const fresh = Math.max(heard, Math.min(this.heldUntil, at));
    return at - fresh > this.config.stale_after_minutes * 60_000 ? undefined : price;
  }

  private judge(start: number, at: number): SettledPrice {
    const listed = this.listed.get(start);
    if (listed !== undefined) return { start, price: listed, origin: this.origin };
    const single = this.judgeSingle(start + QUARTER, at);
    if (single !== undefined) return { start, price: single, origin: this.origin };
    return { start, price: this.config.fallback, origin: "fallback" };
  }
}

// --- reading what a source sends -------------------------------------------------------------------------------

type Json = unknown;

/**
 * A path into JSON: `price`, `data.current.total`, `prices[0].value`, and the template forms
 * `{{ value_json.price }}` and `value_json['price']` that Home Assistant users write. Undefined when it is not one.
 */
export function parsePath(path: string): (string | number)[] | undefined {
  let p = path.trim();
  const tpl = /^\{\{\s*(.*?)\s*\}\}$/.exec(p);
  if (tpl) p = tpl[1] as string;
  p = p.replace(/^value_json\b\.?/, "");
  const out: (string | number)[] = [];
  const re = /\s*(?:\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\])/y;
  let i = 0;
  while (i < p.length) {
    re.lastIndex = i;
    const m = re.exec(p);
    if (!m) return undefined;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push((m[3] ?? m[4]) as string);
    i = re.lastIndex;
  }
  return out;
}

export function atPath(json: Json, path: readonly (string | number)[]): Json {
  let x: Json = json;
  for (const k of path) {
    if (x === null || typeof x !== "object") return undefined;
    x = (x as Record<string | number, Json>)[k];
  }
  return x;
}

/** A number from a number or a numeric string ("0.2345", " 12,5 " is not one); undefined otherwise. */
export function numberOf(x: Json): number | undefined {
  if (typeof x === "number") return Number.isFinite(x) ? x : undefined;
  if (typeof x === "string" && /^\s*-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(x)) return Number(x);
  return undefined;
}

const START_KEYS = ["start", "startsAt", "starts_at", "start_time", "startTime", "time", "from", "timestamp", "date"];
const END_KEYS = ["end", "endsAt", "ends_at", "end_time", "endTime", "till", "to"];
const VALUE_KEYS = ["value", "price", "total", "price_per_kwh", "marketPrice", "electricity_price"];

/** An instant from an ISO date-time with an offset, or epoch seconds/milliseconds; undefined otherwise. */
function instant(x: Json): number | undefined {
  if (typeof x === "number" && Number.isFinite(x)) return x < 1e11 ? x * 1000 : x;
  if (typeof x !== "string") return undefined;
  // A time without an offset would be read in whatever zone this machine has: not guessed.
  const text = x.trim().replace(/^(\d{4}-\d\d-\d\d) /, "$1T");
  if (!/(Z|[+-]\d\d:?\d\d)$/.test(text)) return undefined;
  const d = DateTime.fromISO(text, { setZone: true });
  return d.isValid ? d.toMillis() : undefined;
}

function pick(o: Record<string, Json>, keys: readonly string[]): Json {
  for (const k of keys) if (k in o) return o[k];
  return undefined;
}

/**
 * A list of prices as the price integrations give them ({start, end, value} of Nord Pool, {time, price} of
 * ENTSO-E and EnergyZero, {startsAt, total} of Tibber…): slots on whole quarter hours. An entry without an end
 * lasts until the next one; the last one as long as the one before (an hour when alone). Returns the slots and the
 * number of entries that could not be read.
 */
export function parseList(items: readonly Json[]): { slots: PriceSlot[]; bad: number } {
  const entries: { start: number; end?: number; value: number }[] = [];
  let bad = 0;
  for (const item of items.slice(0, MAX_LIST_SLOTS)) {
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      bad++;
      continue;
    }
    const o = item as Record<string, Json>;
    const start = instant(pick(o, START_KEYS));
    const endRaw = pick(o, END_KEYS);
    const end = endRaw === undefined ? undefined : instant(endRaw);
    const value = numberOf(pick(o, VALUE_KEYS));
    if (start === undefined || value === undefined || (endRaw !== undefined && end === undefined)) {
      bad++;
      continue;
    }
    entries.push({ start, end, value });
  }
  bad += Math.max(0, items.length - MAX_LIST_SLOTS);
  entries.sort((a, b) => a.start - b.start);
  const slots: PriceSlot[] = [];
  entries.forEach((e, i) => {
    const next = entries[i + 1];
    const prev = slots[slots.length - 1];
    const end = e.end ?? next?.start ?? e.start + (prev ? prev.end - prev.start : 3_600_000);
    if (e.start % QUARTER !== 0 || end % QUARTER !== 0 || end <= e.start || end - e.start > 86_400_000) {
      bad++;
      return;
    }
    slots.push({ start: e.start, end, value: e.value });
  });
  return { slots, bad };
}

/** What one message of a price source holds: a single price, a list, or nothing usable (with why). */
export type PriceMessage =
  | { kind: "price"; value: number }
  | { kind: "list"; slots: PriceSlot[]; bad: number }
  | { kind: "none"; why: string };

/** Reads an MQTT message: a number, or JSON with the price (or a list of prices) at `path`. */
export function readMessage(payload: string, path: (string | number)[] | undefined): PriceMessage {
  const n = numberOf(payload);
  if (n !== undefined && !path) return { kind: "price", value: n };
  let json: Json;
  try {
    json = JSON.parse(payload);
  } catch {
    return { kind: "none", why: "not a number, and not JSON" };
  }
  const x = path ? atPath(json, path) : json;
  const v = numberOf(x);
  if (v !== undefined) return { kind: "price", value: v };
  if (Array.isArray(x)) {
    const { slots, bad } = parseList(x);
    if (slots.length === 0) return { kind: "none", why: "a list without one readable {start, price}" };
    return { kind: "list", slots, bad };
  }
  return {
    kind: "none",
    why: path ? "no number or list of prices at the configured path" : "JSON without a number: set `path`",
  };
}

/**
 * What to set when an entity's unit says its numbers are not per kWh in the currency's main unit and `multiply` is
 * still 1: per MWh (ENTSO-E, Nord Pool's raw prices) or in cents, øre or öre per kWh. Undefined when nothing is amiss.
 */
export function unitHint(unit: unknown, multiply: number): string | undefined {
  if (typeof unit !== "string" || multiply !== 1) return undefined;
  if (/\/\s*MWh$/i.test(unit)) return `its unit is ${unit}: set multiply: 0.001 for a price per kWh`;
  if (/^(c|ct|cents?|øre|öre|ore|p|pence)\s*\/\s*kWh$/i.test(unit))
    return `its unit is ${unit}: set multiply: 0.01 for a price per kWh in the currency`;
  return undefined;
}

/** A price per kWh beyond ±this is a unit mistake (per MWh without `multiply: 0.001`), not a price. */
const MAX_PRICE = 100;

/** Why a source's number cannot be a price once converted, or undefined when it can. */
export function implausible(feed: PriceFeed, value: number): string | undefined {
  const p = feed.convert(value);
  return Math.abs(p) <= MAX_PRICE
    ? undefined
    : `${value} makes ${p} per kWh, which is no price: if the source gives prices per MWh, set multiply: 0.001`;
}

/** Attributes where price integrations keep the day's prices, looked for when `attribute` is not set. */
export const LIST_ATTRIBUTES = [
  "raw_today",
  "raw_tomorrow",
  "prices_today",
  "prices_tomorrow",
  "prices",
  "today",
  "tomorrow",
  "forecast",
] as const;

/** The price lists of an entity's attributes: the configured one, else the usual ones that hold dated entries. */
export function listsOfAttributes(attributes: Record<string, Json>, attribute: string | undefined): PriceSlot[] {
  const names = attribute !== undefined ? [attribute] : LIST_ATTRIBUTES;
  const slots: PriceSlot[] = [];
  for (const name of names) {
    const x = attributes[name];
    if (!Array.isArray(x)) continue;
    slots.push(...parseList(x).slots);
  }
  return slots;
}
