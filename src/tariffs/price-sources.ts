/**
 * Where dynamic prices come from: a topic on the bridge's MQTT broker, or a Home Assistant entity through HA's
 * websocket (`subscribe_entities`: the entity's state now, then each change, including its attributes). Both are
 * input from the network: a message is bounded in size, its price in range, and what cannot be read is logged once
 * in a while, quoted and cut short.
 */
import { describeHaUrl, type HaClient, type HaError } from "../outputs/statistics/ha.js";
import { type Logger, LogLimiter, quote } from "../util/log.js";
import {
  implausible,
  listsOfAttributes,
  numberOf,
  type PriceFeed,
  parsePath,
  readMessage,
  unitHint,
} from "./dynamic.js";

/** A price message: a number, or JSON with a day or two of prices (a few hundred entries). */
export const MAX_PRICE_MESSAGE_BYTES = 64 * 1024;
/** An entity's state with its attributes: a few days of quarter-hour prices and their metadata. */
export const MAX_ENTITY_BYTES = 1024 * 1024;
const WARN_EVERY_MS = 3_600_000;
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

/** What the MQTT output offers price topics (src/outputs/mqtt/index.ts). */
export interface PriceTopicBroker {
  subscribe(
    topic: string,
    handler: (payload: string, retained: boolean) => void,
    opts?: { maxBytes?: number },
  ): () => void;
}

/** One warning an hour per kind of trouble: the log stays readable when a source keeps sending the same thing. */
const limiter = (log: Logger, now: () => number): LogLimiter => new LogLimiter(log, WARN_EVERY_MS, now);

/** A source's number as a price, or a warning (once an hour) and nothing. */
function plausible(feed: PriceFeed, value: number, where: string, warner: LogLimiter): boolean {
  const why = implausible(feed, value);
  if (why) warner.warn("range", `${where}: ${why}`);
  return why === undefined;
}

/** Follows a price topic; returns the function that ends it. */
export function followPriceTopic(
  feed: PriceFeed,
  topic: string,
  path: string | undefined,
  broker: PriceTopicBroker,
  log: Logger,
  now: () => number,
): () => void {
  const where = `price topic ${topic}`;
  // The schema took only paths that parse.
  const parsed = path === undefined ? undefined : parsePath(path);
  const warner = limiter(log, now);
  return broker.subscribe(
    topic,
    (payload) => {
      const m = readMessage(payload, parsed);
      if (m.kind === "price") {
        if (plausible(feed, m.value, where, warner)) feed.offer(m.value);
      } else if (m.kind === "list") {
        const ok = m.slots.filter((s) => plausible(feed, s.value, where, warner));
        feed.offerList(ok);
        if (m.bad > 0) warner.warn("list", `${where}: ${m.bad} entr(ies) of a price list could not be read`);
      } else warner.warn("none", `${where}: ${m.why}: ${quote(payload, 80)}`);
    },
    { maxBytes: MAX_PRICE_MESSAGE_BYTES },
  );
}

type Compressed = { s?: unknown; a?: Record<string, unknown> };
type EntityEvent = {
  a?: Record<string, Compressed>;
  c?: Record<string, { "+"?: Compressed; "-"?: { a?: string[] } }>;
  r?: string[];
};

/**
 * Follows a Home Assistant entity: its state is the price now, and a price list in its attributes (Nord Pool's
 * raw_today, ENTSO-E's prices_today…) prices the quarter hours it covers. Reconnects after HA restarts; while HA is
 * away the last price holds for `stale_after_minutes`, then the fallback applies.
 */
export class EntityPriceSource {
  private client?: HaClient;
  private timer?: NodeJS.Timeout;
  private delay = RETRY_MIN_MS;
  private stopped = false;
  private state?: { s: unknown; a: Record<string, unknown> };
  private readonly warner: LogLimiter;
  private connectedOnce = false;
  private down = false;

  constructor(
    private readonly feed: PriceFeed,
    private readonly entity: string,
    private readonly ha: { url: string; token: string },
    private readonly log: Logger,
    private readonly connect: (url: string, token: string, opts: { maxPayload: number }) => Promise<HaClient>,
    now: () => number,
  ) {
    this.warner = limiter(log, now);
  }

  start(): void {
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client?.close();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    let client: HaClient;
    try {
      client = await this.connect(this.ha.url, this.ha.token, { maxPayload: MAX_ENTITY_BYTES });
    } catch (err) {
      this.lost((err as HaError).message);
      return;
    }
    if (this.stopped) {
      await client.close();
      return;
    }
    this.client = client;
    client.onClose((err) => {
      if (this.client === client) this.client = undefined;
      this.lost(err.message);
    });
    try {
      this.state = undefined;
      await client.subscribe({ type: "subscribe_entities", entity_ids: [this.entity] }, (e) => this.onEvent(e));
    } catch (err) {
      this.log.error(`${this.entity}: Home Assistant refused to send its state: ${(err as Error).message}`);
      await client.close();
      return;
    }
    this.delay = RETRY_MIN_MS;
    if (this.down || !this.connectedOnce)
      this.log.info(`prices from ${this.entity} in Home Assistant (${describeHaUrl(this.ha.url)})`);
    this.connectedOnce = true;
    this.down = false;
  }

  private lost(why: string): void {
    this.feed.hold(false);
    if (this.stopped) return;
    if (!this.down)
      this.log.warn(
        `prices from ${this.entity}: no connection to Home Assistant (${why}); the last price holds for ${this.feed.config.stale_after_minutes} minutes, then the fallback ${this.feed.config.fallback}; retrying`,
      );
    this.down = true;
    this.timer = setTimeout(() => void this.run(), this.delay);
    this.timer.unref?.();
    this.delay = Math.min(this.delay * 2, RETRY_MAX_MS);
  }

  private onEvent(event: unknown): void {
    if (event === null || typeof event !== "object") return;
    const e = event as EntityEvent;
    const added = e.a?.[this.entity];
    if (added) this.state = { s: added.s, a: { ...(added.a ?? {}) } };
    else if (e.a && !this.state) {
      this.warner.warn("missing", `${this.entity}: Home Assistant has no such entity; using the fallback price`);
      this.feed.hold(false);
      return;
    }
    const changed = e.c?.[this.entity];
    if (changed && this.state) {
      if (changed["+"]?.s !== undefined) this.state.s = changed["+"].s;
      Object.assign(this.state.a, changed["+"]?.a ?? {});
      for (const k of changed["-"]?.a ?? []) delete this.state.a[k];
    }
    if (e.r?.includes(this.entity)) {
      this.state = undefined;
      this.feed.hold(false);
      this.warner.warn("removed", `${this.entity} was removed from Home Assistant; using the fallback price`);
      return;
    }
    if ((added || changed) && this.state) this.apply(this.state);
  }

  private apply(state: { s: unknown; a: Record<string, unknown> }): void {
    const where = this.entity;
    const hint = unitHint(state.a.unit_of_measurement, this.feed.config.multiply);
    if (hint) {
      // A thousand times the price would make every cost wrong: better the fallback and a clear word.
      this.feed.hold(false);
      this.warner.warn("unit", `${where}: ${hint}; until then the fallback price applies`);
      return;
    }
    const slots = listsOfAttributes(state.a, this.feed.config.attribute).filter((s) =>
      plausible(this.feed, s.value, where, this.warner),
    );
    if (slots.length > 0) this.feed.offerList(slots);
    else if (this.feed.config.attribute !== undefined)
      this.warner.warn(
        "attribute",
        `${where}: no price list in its attribute ${quote(this.feed.config.attribute, 80)}`,
      );
    const value = numberOf(state.s);
    if (value === undefined) {
      // unavailable, unknown: the integration has no price now; the last one holds until it is stale.
      this.feed.hold(false);
      this.warner.warn("state", `${where} is ${quote(String(state.s), 80)}, not a price`);
      return;
    }
    if (!plausible(this.feed, value, where, this.warner)) return;
    this.feed.offer(value);
    this.feed.hold(true);
  }
}
