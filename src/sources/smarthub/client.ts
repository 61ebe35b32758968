/**
 * A client of a NISC SmartHub co-op portal (https://<coop>.smarthub.coop): login, the account's service locations,
 * and the usage poll. NISC publishes no API; what is here is what the portal was seen to do (see README).
 *
 * - Login is a form POST to /services/oauth/auth/v2 (`userId`, `password`, and `twoFactorCode` for accounts with
 *   two-factor login, computed from the TOTP secret). It answers a bearer token that lasts about five minutes
 *   (`expiresIn` 299); the client logs in again shortly before it runs out, and once more when the portal refuses a
 *   token anyway (a token that expired mid-backfill).
 * - A refused login is HTTP 500 with a sentence ("Your data could not be verified…"), not 401. It is an
 *   AuthError, never retried: asking again with the same password only risks locking the account.
 * - The usage poll answers {"status":"PENDING"} first and the data when asked again a few seconds later; it is
 *   asked again after each of `pollDelaysMs`, then given up (a poll that never completes).
 * - A request that fails on the way (no answer in time, a refused connection, a 502/503/504, an HTML page instead
 *   of JSON, as during maintenance) is tried again after each of `retryDelaysMs`, then reported.
 * Nothing secret ends up in an error: the password, the code and the token are never part of a message.
 */
import got, { type Got, RequestError } from "got";
import { type Clock, systemClock } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { VERSION } from "../../version.js";
import { totp } from "./totp.js";

export type SmarthubErrorKind =
  /** Credentials or two-factor code refused: retrying will not help until the configuration changes. */
  | "auth"
  /** The portal could not be reached or answered something else than JSON: worth another try later. */
  | "unavailable"
  /** The usage poll stayed PENDING. */
  | "pending"
  /** JSON, but not what a SmartHub portal answers (or a poll that FAILED). */
  | "answer";

export class SmarthubError extends Error {
  constructor(
    message: string,
    readonly kind: SmarthubErrorKind,
  ) {
    super(message);
    this.name = "SmarthubError";
  }
}

export interface SmarthubClientOptions {
  /** https://novec.smarthub.coop */
  baseUrl: string;
  username: string;
  password: string;
  totpSecret?: string;
  clock?: Clock;
  log?: Logger;
  /** Per request. */
  timeoutMs?: number;
  /** Waits before each new try of a request that failed on the way. */
  retryDelaysMs?: readonly number[];
  /** Waits before asking again while the poll answers PENDING; after the last, it is given up. */
  pollDelaysMs?: readonly number[];
  /** How to wait; the default waits on `clock` and ends early when the client is closed. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [5_000, 30_000];
/** About 80 s in all; one second try after a few seconds is what the portal was seen to need. */
export const DEFAULT_POLL_DELAYS_MS: readonly number[] = [1_000, 2_000, 3_000, 5_000, 8_000, 13_000, 20_000, 30_000];
/** Used when a login answer says nothing about the token's lifetime (the portal's is 299 s). */
const DEFAULT_TOKEN_SECONDS = 299;
const LOGIN_PATH = "/services/oauth/auth/v2";
const USER_DATA_PATH = "/services/secured/user-data";
const POLL_PATH = "/services/secured/utility-usage/poll";

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined =>
  typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined;

export interface Session {
  token: string;
  /** The login the portal's secured calls are made for (primaryUsername; the username for most). */
  primaryUsername: string;
  expiresAt: number;
}

export interface PollQuery {
  account: string;
  serviceLocation: string;
  /** UTC ms: local midnight of the first day. */
  start: number;
  /** UTC ms: local midnight after the last day. */
  end: number;
  timeFrame?: "HOURLY" | "DAILY";
}

/** `https://host` of a base URL, for messages: never a path, query or user info. */
export function describeBaseUrl(baseUrl: string): string {
  try {
    const u = new URL(baseUrl);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "(unparsable base_url)";
  }
}

/** One line of what a portal said: the JSON's message, or the text, whitespace squeezed, cut short. */
export function portalMessage(body: string): string {
  let message = body;
  try {
    const j = JSON.parse(body) as unknown;
    if (isObject(j))
      message =
        str(j.message) ?? str(j.errorMessage) ?? str(j.error_description) ?? str(j.error) ?? str(j.status) ?? body;
  } catch {
    // Not JSON: the text is the message.
  }
  const squeezed = message.replace(/\s+/g, " ").trim();
  return squeezed.length > 200 ? `${squeezed.slice(0, 199)}…` : squeezed;
}

const looksLikeHtml = (contentType: string | undefined, body: string): boolean =>
  /html/i.test(contentType ?? "") || /^\s*</.test(body);

interface Answer {
  url: string;
  status: number;
  body: string;
  contentType?: string;
}

export class SmarthubClient {
  /** logins: successful logins; requests: HTTP requests sent (tries included). */
  readonly stats = { logins: 0, requests: 0 };
  readonly host: string;
  private readonly http: Got;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly retryDelays: readonly number[];
  private readonly pollDelays: readonly number[];
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly timeoutMs: number;
  private readonly origin: string;
  private abort = new AbortController();
  private session?: Session;
  private loggingIn?: Promise<Session>;

  constructor(private readonly opts: SmarthubClientOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? createLogger("smarthub");
    this.retryDelays = opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    this.pollDelays = opts.pollDelaysMs ?? DEFAULT_POLL_DELAYS_MS;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.sleep = opts.sleep ?? ((ms, signal) => clockSleep(this.clock, ms, signal));
    this.origin = describeBaseUrl(opts.baseUrl);
    this.host = this.origin.replace(/^[a-z]+:\/\//, "");
    this.http = got.extend({
      timeout: { request: this.timeoutMs },
      retry: { limit: 0 },
      throwHttpErrors: false,
      responseType: "text",
      headers: { "user-agent": `meter2mqtt/${VERSION}`, accept: "application/json" },
    });
  }

  /** Aborts what is under way (a request, a wait between polls); later calls start afresh. */
  close(): void {
    this.abort.abort();
    this.abort = new AbortController();
  }

  /** Logs in now (also done on demand by every other call). */
  async login(): Promise<Session> {
    this.loggingIn ??= this.doLogin().finally(() => {
      this.loggingIn = undefined;
    });
    return this.loggingIn;
  }

  /** GET user-data: the customers, accounts and service locations of this login. */
  async userData(): Promise<unknown> {
    return this.secured("user-data", async (s) =>
      this.send("user-data", {
        method: "GET",
        path: USER_DATA_PATH,
        searchParams: { userId: s.primaryUsername },
        token: s.token,
      }),
    );
  }

  /** The usage of one window, once the portal has it ready (status COMPLETE): the parsed JSON answer. */
  async poll(q: PollQuery): Promise<Obj> {
    // As the portal's own page sends it; the window bounds are real instants (local midnights).
    const body = {
      timeFrame: q.timeFrame ?? "HOURLY",
      userId: this.opts.username,
      screen: "USAGE_EXPLORER",
      includeDemand: false,
      serviceLocationNumber: q.serviceLocation,
      accountNumber: q.account,
      industries: ["ELECTRIC"],
      startDateTime: q.start,
      endDateTime: q.end,
    };
    const started = this.clock.now();
    // close() swaps the controller: this poll keeps the signal it started with, and sees it aborted.
    const signal = this.abort.signal;
    for (let attempt = 0; ; attempt++) {
      const answer = await this.secured("poll", (s) =>
        this.send("poll", { method: "POST", path: POLL_PATH, json: body, token: s.token }),
      );
      if (!isObject(answer)) throw new SmarthubError("poll: the portal answered JSON that is not an object", "answer");
      const status = str(answer.status) ?? "";
      if (status === "COMPLETE" || (status === "" && isObject(answer.data))) return answer;
      if (status !== "PENDING")
        throw new SmarthubError(`poll: the portal answered status ${status || "(none)"}, not COMPLETE`, "answer");
      const delay = this.pollDelays[attempt];
      if (delay === undefined)
        throw new SmarthubError(
          `poll: still PENDING after ${attempt + 1} tries over ${Math.round((this.clock.now() - started) / 1000)} s; the portal did not prepare the data`,
          "pending",
        );
      this.log.debug(() => `poll PENDING, asking again in ${delay} ms`);
      await this.wait("poll", delay, signal);
    }
  }

  // ── internals ──────────────────────────────────────────────────────────────────────────────────

  /** Runs a call with a valid token: renewed before it runs out, and once more when the portal refuses it. */
  private async secured(what: string, call: (s: Session) => Promise<Answer>): Promise<unknown> {
    let session = await this.validSession();
    let answer = await call(session);
    if (answer.status === 401 || answer.status === 403) {
      this.log.debug(`${what}: token refused (HTTP ${answer.status}); logging in again`);
      this.session = undefined;
      session = await this.login();
      answer = await call(session);
      if (answer.status === 401 || answer.status === 403)
        throw new SmarthubError(`${what}: the portal refused a fresh login's token (HTTP ${answer.status})`, "auth");
    }
    return this.json(what, answer);
  }

  private async wait(what: string, ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new SmarthubError(`${what}: stopped`, "unavailable");
    await this.sleep(ms, signal);
    if (signal.aborted) throw new SmarthubError(`${what}: stopped`, "unavailable");
  }

  private async validSession(): Promise<Session> {
    const s = this.session;
    if (s && this.clock.now() < s.expiresAt) return s;
    return this.login();
  }

  /** The JSON of an answer `send` let through (5xx and HTML pages it has already tried again and reported). */
  private json(what: string, a: Answer): unknown {
    if (a.status === 404)
      throw new SmarthubError(
        `${what}: ${this.origin} has no ${new URL(a.url).pathname} (HTTP 404): check base_url`,
        "answer",
      );
    if (a.status !== 200) throw new SmarthubError(`${what}: the portal answered HTTP ${a.status}`, "answer");
    try {
      return JSON.parse(a.body) as unknown;
    } catch {
      throw new SmarthubError(`${what}: the portal answered something that is not JSON`, "answer");
    }
  }

  private async doLogin(): Promise<Session> {
    const form: Record<string, string> = { userId: this.opts.username, password: this.opts.password };
    if (this.opts.totpSecret) {
      try {
        form.twoFactorCode = totp(this.opts.totpSecret, this.clock.now());
      } catch (err) {
        throw new SmarthubError(`login: ${(err as Error).message}`, "auth");
      }
    }
    const a = await this.send("login", { method: "POST", path: LOGIN_PATH, form });
    if (a.status === 404)
      throw new SmarthubError(`login: no SmartHub portal at ${this.origin} (HTTP 404): check base_url`, "answer");
    if (a.status !== 200) throw new SmarthubError(this.refusal(a), "auth");
    let j: unknown;
    try {
      j = JSON.parse(a.body);
    } catch {
      throw new SmarthubError("login: the portal answered something that is not JSON", "answer");
    }
    const token = isObject(j) ? str(j.authorizationToken) : undefined;
    if (!isObject(j) || !token) {
      const said = isObject(j) ? portalMessage(a.body) : "";
      throw new SmarthubError(`login: the portal gave no token${said ? ` (it said "${said}")` : ""}`, "auth");
    }
    const seconds =
      typeof j.expiresIn === "number" && j.expiresIn > 0
        ? j.expiresIn
        : typeof j.expiration === "number"
          ? j.expiration - this.clock.now() / 1000
          : DEFAULT_TOKEN_SECONDS;
    const lifetime = Math.max(1, seconds) * 1000;
    // Renewed a little early: a request sent in the token's last second would arrive with an expired one.
    const margin = Math.min(30_000, lifetime / 10);
    const session: Session = {
      token,
      primaryUsername: str(j.primaryUsername) ?? str(j.username) ?? this.opts.username,
      expiresAt: this.clock.now() + lifetime - margin,
    };
    this.session = session;
    this.stats.logins++;
    this.log.debug(() => `logged in to ${this.origin}; token for ${Math.round(lifetime / 1000)} s`);
    return session;
  }

  /** Why a login was refused, naming the likely cause (the portal says the same for each). */
  private refusal(a: Answer): string {
    if (a.status === 401 || a.status === 403)
      return `login refused by ${this.origin} (HTTP ${a.status}): check username and password`;
    const said = portalMessage(a.body);
    if (/could not be verified/i.test(said))
      return this.opts.totpSecret
        ? `login refused by ${this.origin}: "${said}" The username, password or two-factor code is wrong: check them, totp_secret, and that this machine's clock is right`
        : `login refused by ${this.origin}: "${said}" The username or password is wrong, or the account has two-factor login and totp_secret is not set`;
    if (/two.?factor|verification code|one.?time|\bcode\b/i.test(said))
      return `login refused by ${this.origin}: "${said}" Check totp_secret${this.opts.totpSecret ? " and this machine's clock" : " (the account has two-factor login)"}`;
    return `login refused by ${this.origin} (HTTP ${a.status}): "${said}" Check username and password`;
  }

  /**
   * One request, tried again after each retry delay while it fails on the way. A 500 answer to the login is
   * returned (it is the refusal); any other 5xx, and any HTML page, counts as failing on the way.
   */
  private async send(
    what: string,
    r: {
      method: "GET" | "POST";
      path: string;
      token?: string;
      form?: Record<string, string>;
      json?: unknown;
      searchParams?: Record<string, string>;
    },
  ): Promise<Answer> {
    const url = new URL(r.path, `${this.origin}/`).href;
    const signal = this.abort.signal;
    for (let attempt = 0; ; attempt++) {
      let problem: string;
      try {
        const headers: Record<string, string> = {};
        if (r.token) {
          headers.authorization = `Bearer ${r.token}`;
          headers["x-nisc-smarthub-username"] = this.opts.username;
        }
        this.stats.requests++;
        const res = await this.http(url, {
          method: r.method,
          headers,
          form: r.form,
          json: r.json,
          searchParams: r.searchParams,
          signal,
        });
        const answer: Answer = {
          url,
          status: res.statusCode,
          body: res.body,
          contentType: res.headers["content-type"],
        };
        // A maintenance page comes as 200 or 5xx; an HTML 404 is a wrong base_url, for the caller to name.
        const html = looksLikeHtml(answer.contentType, answer.body) && (answer.status === 200 || answer.status >= 500);
        const loginRefusal = r.path === LOGIN_PATH && answer.status === 500 && !html;
        if (!html && (answer.status < 500 || loginRefusal) && answer.status !== 429) return answer;
        problem = html
          ? `the portal answered an HTML page (HTTP ${answer.status}) instead of JSON; it may be down for maintenance`
          : `the portal answered HTTP ${answer.status}: ${portalMessage(answer.body)}`;
      } catch (err) {
        if (signal.aborted) throw new SmarthubError(`${what}: stopped`, "unavailable");
        problem = describeRequestError(err, this.timeoutMs);
      }
      const delay = this.retryDelays[attempt];
      if (delay === undefined)
        throw new SmarthubError(`${what}: ${problem}${attempt > 0 ? ` (${attempt + 1} tries)` : ""}`, "unavailable");
      this.log.warn(`${what}: ${problem}; trying again in ${duration(delay)}`);
      await this.wait(what, delay, signal);
    }
  }
}

const duration = (ms: number): string => (ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`);

function describeRequestError(err: unknown, timeoutMs: number): string {
  if (err instanceof RequestError) {
    if (err.name === "TimeoutError") return `no answer within ${duration(timeoutMs)}`;
    // got's message holds the URL, which holds nothing secret, but the code says it shorter.
    return `cannot reach the portal (${err.code || err.name})`;
  }
  return `request failed: ${(err as Error).message}`;
}

/** Waits on the clock; a stop (abort) ends the wait early (the caller sees the signal aborted). */
export function clockSleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
