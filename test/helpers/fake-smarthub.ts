/**
 * A local stand-in for a NISC SmartHub co-op portal, answering as the real one was recorded to (the shapes in
 * ../shared/data/smarthub, rebuilt here, never copied):
 *   - POST /services/oauth/auth/v2, a form with userId, password and (two-factor accounts) twoFactorCode: 200 with
 *     {authorizationToken, expiresIn, expiration (epoch s), primaryUsername, status: SUCCESS, …}; a refused login
 *     is HTTP 500 with the portal's sentence, not 401;
 *   - GET /services/secured/user-data?userId=…: the customer list with account and service locations;
 *   - POST /services/secured/utility-usage/poll (JSON): {"status":"PENDING"} for the first `pending` asks of a
 *     request, then {"status":"COMPLETE","data":{"ELECTRIC":[USAGE, TIME_OF_USE, COST?]}} with `x` the co-op's
 *     wall clock written as if UTC: the spring-forward hour has no points and the fall-back hour two with the same x;
 *   - secured calls want `Authorization: Bearer <token>` and `X-Nisc-Smarthub-Username`, else 401.
 * The usage is a deterministic function of the instant, so what was served can be computed back (`expected`).
 * Failures on demand: an HTML page instead of JSON, no answer at all, a poll that never completes, tokens that
 * expire after a few uses.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { IANAZone } from "luxon";
import { totp } from "../../src/sources/smarthub/totp.js";

export const REFUSED = "Your data could not be verified. If the problem persists, please contact customer service.";
const MINUTE_MS = 60_000;
const MAINTENANCE = "<!DOCTYPE html><html><body><h1>SmartHub is down for scheduled maintenance</h1></body></html>";

export type FakeFlow = "FORWARD" | "NET" | "RETURN";
export type FakeMode = "ok" | "html" | "hang" | "pending" | "unavailable";

export interface FakeSmarthubOptions {
  username?: string;
  password?: string;
  /** The account has two-factor login with this base32 secret. */
  totpSecret?: string;
  timezone?: string;
  /** FORWARD: one meter; NET: a net meter (negative is export) plus its FORWARD channel; RETURN: FORWARD + RETURN. */
  flow?: FakeFlow;
  intervalMinutes?: 15 | 60;
  /** Price per kWh: the answer has a COST entry. Without it, none (as at Cobb EMC). */
  price?: number;
  /** PENDING answers before the data, per request. */
  pending?: number;
  /** expiresIn of a login, s. */
  tokenSeconds?: number;
  /** Secured calls a token is good for; then 401, as an expired token. */
  tokenUses?: number;
  account?: string;
  location?: string;
  /** Data only up to this instant (the running interval is not in yet); default the real now. */
  now?: () => number;
  /** Body of a refused login (default the portal's sentence). */
  refusedBody?: string;
}

export interface ServedInterval {
  start: number;
  end: number;
  direction: "import" | "export";
  kwh: number;
  cost?: number;
}

export interface FakeSmarthub {
  url: string;
  mode: FakeMode;
  /** Added to every usage value from this instant on (a revision by the co-op); 0 = none. */
  revision: { from: number; delta: number };
  readonly logins: { ok: boolean; twoFactorCode?: string }[];
  readonly polls: { start: number; end: number; status: string }[];
  readonly requests: { method: string; path: string }[];
  /** Secured calls refused for want of a valid token. */
  unauthorized: number;
  /** Called before answering a poll with data; "hold" leaves it unanswered, "html" answers a maintenance page. */
  onPoll?: (p: { start: number; end: number }) => undefined | "hold" | "html";
  /** What the COMPLETE answers held (the latest per interval and direction), as the bridge should store it. */
  expected(): Map<string, ServedInterval>;
  /** Hourly sums of `expected()` by UTC hour: import kWh, export kWh, cost. */
  hourly(): Map<number, { import: number; export: number; cost: number }>;
  /** The answer the portal would give for a window, COMPLETE (for decode tests). */
  answer(start: number, end: number): Record<string, unknown>;
  close(): Promise<void>;
}

const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** Usage in kWh of one slot: a daily shape plus a wobble, from the instant alone. */
function consumption(t: number, slotMs: number): number {
  const n = Math.floor(t / slotMs);
  const hourOfDay = new Date(t).getUTCHours();
  const shape = 0.4 + 0.6 * Math.sin(((hourOfDay - 6) / 24) * 2 * Math.PI) ** 2;
  return round((shape + ((n * 7919) % 53) / 40) * (slotMs / 3_600_000), 3);
}

/** Solar delivered in one slot: midday only. */
function generation(t: number, slotMs: number, timezone: IANAZone): number {
  const local = new Date(t + timezone.offset(t) * MINUTE_MS).getUTCHours();
  if (local < 9 || local > 16) return 0;
  return round((1.2 + ((Math.floor(t / slotMs) * 31) % 17) / 10) * (slotMs / 3_600_000), 3);
}

export async function startFakeSmarthub(opts: FakeSmarthubOptions = {}): Promise<FakeSmarthub> {
  const username = opts.username ?? "member@example.com";
  const password = opts.password ?? "correct horse battery";
  const zone = IANAZone.create(opts.timezone ?? "America/New_York");
  const flow = opts.flow ?? "FORWARD";
  const slotMs = (opts.intervalMinutes ?? 60) * MINUTE_MS;
  const account = opts.account ?? "900000001";
  const location = opts.location ?? "70001";
  const now = opts.now ?? (() => Date.now());
  const meters =
    flow === "FORWARD"
      ? [{ id: "1N0000000001", flow: "FORWARD", net: false }]
      : flow === "NET"
        ? [
            { id: "1ND8000000001", flow: "NET", net: true },
            { id: "1ND9000000001", flow: "FORWARD", net: false },
          ]
        : [
            { id: "1ND7000000002", flow: "RETURN", net: false },
            { id: "1ND7000000001", flow: "FORWARD", net: false },
          ];
  const tokens = new Map<string, { expires: number; uses: number }>();
  const pendingLeft = new Map<string, number>();
  const served = new Map<string, ServedInterval>();
  const sockets = new Set<Socket>();
  const held: ServerResponse[] = [];
  let tokenSeq = 0;

  const fake: FakeSmarthub = {
    url: "",
    mode: "ok",
    revision: { from: 0, delta: 0 },
    logins: [],
    polls: [],
    requests: [],
    unauthorized: 0,
    expected: () => served,
    hourly() {
      const out = new Map<number, { import: number; export: number; cost: number }>();
      for (const s of served.values()) {
        const h = Math.floor(s.start / 3_600_000) * 3_600_000;
        const e = out.get(h) ?? { import: 0, export: 0, cost: 0 };
        e[s.direction] = round(e[s.direction] + s.kwh, 6);
        e.cost = round(e.cost + (s.cost ?? 0), 6);
        out.set(h, e);
      }
      return out;
    },
    answer: (start, end) => complete(start, end, false),
    close: async () => {
      for (const r of held) r.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  /** The value of a series at an instant, with the co-op's revision applied. */
  const value = (series: (typeof meters)[number], t: number): number => {
    const revised = t >= fake.revision.from ? fake.revision.delta : 0;
    const use = consumption(t, slotMs);
    const sun = generation(t, slotMs, zone);
    if (series.flow === "NET") return round(use - sun + revised, 3);
    if (series.flow === "RETURN") return sun;
    return round(use + revised, 3);
  };

  function complete(start: number, end: number, record: boolean): Record<string, unknown> {
    const usagePoints = new Map<string, { x: number; y: number; enableDrilldown: boolean }[]>();
    const costPoints = new Map<string, { x: number; y: number; enableDrilldown: boolean }[]>();
    const xmap: Record<string, unknown> = {};
    const periods = new Map<string, { x: number; y: number }[]>();
    for (let t = start; t < end && t + slotMs <= now(); t += slotMs) {
      const x = t + zone.offset(t) * MINUTE_MS;
      xmap[String(x)] = { createTickDrillDownLink: false, interval: { start: x, end: x + slotMs } };
      for (const m of meters) {
        const y = value(m, t);
        const list = usagePoints.get(m.id) ?? [];
        list.push({ x, y, enableDrilldown: false });
        usagePoints.set(m.id, list);
        const billed = m.flow === "NET" || (m.flow === "FORWARD" && !meters.some((o) => o.flow === "NET"));
        const cost = opts.price !== undefined && billed ? round(y * opts.price, 4) : undefined;
        if (cost !== undefined) {
          const c = costPoints.get(m.id) ?? [];
          c.push({ x, y: cost, enableDrilldown: false });
          costPoints.set(m.id, c);
        }
        if (m.flow === "FORWARD" && !meters.some((o) => o.flow === "NET")) {
          const hour = new Date(x).getUTCHours();
          const period = hour < 6 ? "Super Off Pk" : hour >= 13 && hour < 20 ? "On Peak" : "Off Peak";
          const p = periods.get(`${m.id} - ${period}`) ?? [];
          p.push({ x, y });
          periods.set(`${m.id} - ${period}`, p);
        }
        if (!record || (m.flow === "FORWARD" && meters.some((o) => o.flow === "NET"))) continue;
        const parts: [string, number][] =
          m.flow === "NET"
            ? [
                ["import", Math.max(y, 0)],
                ["export", Math.max(-y, 0)],
              ]
            : [[m.flow === "RETURN" ? "export" : "import", y]];
        for (const [direction, kwh] of parts) {
          const entry: ServedInterval = { start: t, end: t + slotMs, direction: direction as "import" | "export", kwh };
          const onThisSide = m.flow !== "NET" || (direction === "export" ? y < 0 : y >= 0);
          if (cost !== undefined && onThisSide) entry.cost = cost;
          served.set(`${t}|${direction}`, entry);
        }
      }
    }
    const meterList = meters.map((m) => ({
      accountNumber: account,
      channel: 1,
      flowDirection: m.flow,
      isNetMeter: m.net,
      meterNumber: m.id,
      seriesId: m.id,
      serviceLocationNumber: location,
      unitOfMeasure: "KWH",
    }));
    const entry = (
      type: string,
      series: Map<string, { x: number; y: number }[]>,
      extra: Record<string, unknown> = {},
    ) => ({
      accountNumber: account,
      connectDate: "August 28, 2020",
      editedSeries: {},
      endDateTime: end,
      estimatedSeries: {},
      hasDaily: true,
      hasHourly: true,
      industry: "ELECTRIC",
      meters: meterList,
      series: [...series].map(([name, data]) => ({ meterNumber: name.split(" - ")[0], name, data })),
      serviceLocationNumber: location,
      startDateTime: start,
      timeFrame: "HOURLY",
      type,
      unitOfMeasure: "KWH",
      xToOrderedInterval: xmap,
      ...extra,
    });
    const electric: unknown[] = [entry("USAGE", usagePoints)];
    if (periods.size > 0)
      electric.push(
        entry("TIME_OF_USE", periods, {
          meters: [...periods.keys()].map((k) => ({ ...meterList[0], seriesId: k, rateName: k.split(" - ")[1] })),
        }),
      );
    if (opts.price !== undefined) electric.push(entry("COST", costPoints, { unitOfMeasure: "USD" }));
    return { data: { ELECTRIC: electric }, status: "COMPLETE" };
  }

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => resolve(body));
    });

  const send = (res: ServerResponse, status: number, body: unknown, type = "application/json"): void => {
    res.writeHead(status, { "content-type": type });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  };

  const authorized = (req: IncomingMessage): boolean => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const t = token ? tokens.get(token) : undefined;
    if (!t || req.headers["x-nisc-smarthub-username"] !== username) return false;
    if (Date.now() > t.expires) return false;
    t.uses++;
    return opts.tokenUses === undefined || t.uses <= opts.tokenUses;
  };

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://fake");
    fake.requests.push({ method: req.method ?? "", path: url.pathname });
    const body = await readBody(req);
    if (fake.mode === "hang") {
      held.push(res);
      return;
    }
    if (fake.mode === "html") {
      send(res, 200, MAINTENANCE, "text/html");
      return;
    }
    if (fake.mode === "unavailable") {
      send(res, 503, "Service Unavailable", "text/plain");
      return;
    }
    if (url.pathname === "/services/oauth/auth/v2" && req.method === "POST") {
      const form = new URLSearchParams(body);
      const code = form.get("twoFactorCode") ?? undefined;
      const codeOk =
        !opts.totpSecret ||
        (code !== undefined &&
          [-1, 0, 1].some((step) => totp(opts.totpSecret as string, Date.now() + step * 30_000) === code));
      const ok = form.get("userId") === username && form.get("password") === password && codeOk;
      fake.logins.push(code === undefined ? { ok } : { ok, twoFactorCode: code });
      if (!ok) {
        send(res, 500, opts.refusedBody ?? REFUSED, "text/plain");
        return;
      }
      const token = `token-${++tokenSeq}`;
      const seconds = opts.tokenSeconds ?? 299;
      tokens.set(token, { expires: Date.now() + seconds * 1000, uses: 0 });
      send(res, 200, {
        authorizationToken: token,
        expiration: Math.floor(Date.now() / 1000) + seconds,
        expiresIn: seconds,
        isBusinessUser: false,
        isSecondaryRegistration: false,
        primaryUsername: username,
        status: "SUCCESS",
        username,
      });
      return;
    }
    if (url.pathname.startsWith("/services/secured/")) {
      if (!authorized(req)) {
        fake.unauthorized++;
        send(res, 401, { status: "UNAUTHORIZED" });
        return;
      }
      if (url.pathname === "/services/secured/user-data" && req.method === "GET") {
        if (url.searchParams.get("userId") !== username) {
          send(res, 403, { status: "FORBIDDEN" });
          return;
        }
        send(res, 200, [
          {
            account,
            email: username,
            inactive: false,
            primaryServiceLocationId: location,
            serviceLocationIdToServiceLocationSummary: {
              [location]: {
                id: { serviceLocation: location, srvLocNbr: Number(location) },
                meterNumbersToExternalMeterBaseIds: Object.fromEntries(
                  meters.map((m, i) => [m.id, String(9000001 + i)]),
                ),
                serviceStatus: "ACTIVE",
              },
            },
            serviceLocationToIndustries: { [location]: ["ELECTRIC"] },
            serviceLocationToUserDataServiceLocationSummaries: {
              [location]: [{ serviceStatus: "ACTIVE", services: ["ELEC"] }],
            },
            services: ["ELEC"],
          },
        ]);
        return;
      }
      if (url.pathname === "/services/secured/utility-usage/poll" && req.method === "POST") {
        const q = JSON.parse(body) as Record<string, unknown>;
        const start = Number(q.startDateTime);
        const end = Number(q.endDateTime);
        if (
          q.accountNumber !== account ||
          q.serviceLocationNumber !== location ||
          q.userId !== username ||
          q.screen !== "USAGE_EXPLORER" ||
          !Number.isFinite(start) ||
          !(end > start)
        ) {
          fake.polls.push({ start, end, status: "FAILED" });
          send(res, 200, { status: "FAILED" });
          return;
        }
        const left = pendingLeft.get(body) ?? opts.pending ?? 1;
        if (fake.mode === "pending" || left > 0) {
          pendingLeft.set(body, left - 1);
          fake.polls.push({ start, end, status: "PENDING" });
          send(res, 200, { status: "PENDING" });
          return;
        }
        const hook = fake.onPoll?.({ start, end });
        if (hook === "hold") {
          held.push(res);
          return;
        }
        if (hook === "html") {
          fake.polls.push({ start, end, status: "HTML" });
          send(res, 503, MAINTENANCE, "text/html");
          return;
        }
        pendingLeft.delete(body);
        fake.polls.push({ start, end, status: "COMPLETE" });
        send(res, 200, complete(start, end, true));
        return;
      }
    }
    send(res, 404, "<html><body>Not Found</body></html>", "text/html");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
