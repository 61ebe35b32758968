/**
 * The SmartHub client against a local portal that answers as the real one (test/helpers/fake-smarthub.ts): login
 * with and without two-factor codes, refused logins (HTTP 500 with a sentence), tokens that run out, the poll's
 * PENDING → COMPLETE, and the bad answers it must survive. Delays are milliseconds here, not the real seconds.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SmarthubClient, type SmarthubClientOptions, SmarthubError } from "../src/sources/smarthub/client.js";
import { decodePoll, totals } from "../src/sources/smarthub/decode.js";
import { chooseLocation, serviceLocations } from "../src/sources/smarthub/locations.js";
import { base32Decode, hotp, totp } from "../src/sources/smarthub/totp.js";
import { splitWindows, windowBounds } from "../src/sources/smarthub/windows.js";
import { ManualClock } from "../src/util/clock.js";
import { type FakeSmarthub, type FakeSmarthubOptions, REFUSED, startFakeSmarthub } from "./helpers/fake-smarthub.js";
import { recordingLog } from "./helpers/log.js";

const PASSWORD = "correct horse battery";
const SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const FAST = { retryDelaysMs: [5, 5], pollDelaysMs: [5, 5, 5, 5], timeoutMs: 2000 };
const DAY_START = Date.parse("2025-06-01T04:00:00Z");

describe("TOTP (RFC 6238)", () => {
  it("gives the RFC's test vectors", () => {
    // Appendix B, SHA-1, 8 digits, the ASCII key "12345678901234567890" (base32 GEZDGNBVGY3TQOJQ…).
    const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    expect(base32Decode(secret).toString()).toBe("12345678901234567890");
    for (const [t, code] of [
      [59, "94287082"],
      [1111111109, "07081804"],
      [1111111111, "14050471"],
      [1234567890, "89005924"],
      [2000000000, "69279037"],
      [20000000000, "65353130"],
    ] as const)
      expect(totp(secret, t * 1000, { digits: 8 }), String(t)).toBe(code);
    // RFC 4226 Appendix D, the HOTP underneath.
    expect([0, 1, 9].map((c) => hotp(Buffer.from("12345678901234567890"), c))).toEqual(["755224", "287082", "520489"]);
    // Secrets as apps show them: lower case, spaced, padded.
    expect(totp("jbsw y3dp ehpk 3pxp", 0)).toBe(totp("JBSWY3DPEHPK3PXP====", 0));
    expect(() => base32Decode("not-base32!")).toThrow(/not base32/);
  });
});

describe("SmartHub client", () => {
  let fake: FakeSmarthub | undefined;
  const clients: SmarthubClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await fake?.close();
    fake = undefined;
  });

  async function setup(portal: FakeSmarthubOptions = {}, client: Partial<SmarthubClientOptions> = {}) {
    fake = await startFakeSmarthub({ password: PASSWORD, ...portal });
    const rec = recordingLog();
    const c = new SmarthubClient({
      baseUrl: fake.url,
      username: "member@example.com",
      password: PASSWORD,
      log: rec.log,
      ...FAST,
      ...client,
    });
    clients.push(c);
    return { fake, client: c, rec };
  }

  const failure = async (p: Promise<unknown>): Promise<SmarthubError> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SmarthubError);
    const e = err as SmarthubError;
    // Nothing secret in any error.
    expect(e.message).not.toContain(PASSWORD);
    expect(e.message).not.toContain(SECRET);
    expect(e.message).not.toMatch(/token-\d/);
    return e;
  };

  it("logs in, finds the account and location in user-data, and polls until the data are ready", async () => {
    const { fake, client } = await setup({ pending: 2, price: 0.12 });
    const locations = serviceLocations(await client.userData());
    expect(locations).toEqual([
      {
        account: "900000001",
        serviceLocation: "70001",
        meters: ["1N0000000001"],
        electric: true,
        primary: true,
        active: true,
      },
    ]);
    const answer = await client.poll({
      account: "900000001",
      serviceLocation: "70001",
      start: DAY_START,
      end: DAY_START + 86_400_000,
    });
    expect(fake.polls.map((p) => p.status)).toEqual(["PENDING", "PENDING", "COMPLETE"]);
    expect(fake.logins).toEqual([{ ok: true }]);
    const decoded = decodePoll(answer, { meterId: "coop", timezone: "America/New_York" });
    expect(decoded.rejected).toEqual([]);
    expect(decoded.intervals).toHaveLength(24);
    const served = [...fake.expected().values()];
    expect(totals(decoded.intervals)).toEqual(
      totals(served.map((s) => ({ ...s, meterId: "x", energyKwh: s.kwh, quality: "actual" }))),
    );
    expect(decoded.hasCost).toBe(true);
  });

  it("sends a two-factor code from the TOTP secret, and names the cause when the code is missing or wrong", async () => {
    const ok = await setup({ totpSecret: SECRET }, { totpSecret: SECRET });
    await ok.client.login();
    expect(ok.fake.logins).toEqual([{ ok: true, twoFactorCode: expect.stringMatching(/^\d{6}$/) }]);
    await ok.fake.close();

    const missing = await setup({ totpSecret: SECRET });
    const e1 = await failure(
      missing.client.poll({
        account: "900000001",
        serviceLocation: "70001",
        start: DAY_START,
        end: DAY_START + 3_600_000,
      }),
    );
    expect(e1.kind).toBe("auth");
    expect(e1.message).toBe(
      `login refused by ${missing.fake.url}: "${REFUSED}" The username or password is wrong, or the account has two-factor login and totp_secret is not set`,
    );
    // One login, no poll, no retry: asking again would not help and may lock the account.
    expect(missing.fake.logins).toEqual([{ ok: false }]);
    expect(missing.fake.polls).toEqual([]);
    await missing.fake.close();

    const wrong = await setup({ totpSecret: SECRET }, { totpSecret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" });
    const e2 = await failure(wrong.client.login());
    expect(e2.kind).toBe("auth");
    expect(e2.message).toMatch(
      /username, password or two-factor code is wrong: check them, totp_secret, and that this machine's clock is right$/,
    );
    expect(wrong.fake.logins).toHaveLength(1);
  });

  it("reports a wrong password as a refused login, quoting the portal, and tries once", async () => {
    const { fake, client } = await setup({ password: "another one" });
    const e = await failure(client.userData());
    expect(e.kind).toBe("auth");
    expect(e.message).toContain(REFUSED);
    expect(e.message).toMatch(/The username or password is wrong/);
    expect(fake.logins).toHaveLength(1);
    expect(fake.requests.map((r) => r.path)).toEqual(["/services/oauth/auth/v2"]);
    await fake.close();

    const other = await setup({
      password: "another one",
      refusedBody: JSON.stringify({ status: "FAILED", message: "Invalid username or password." }),
    });
    const e2 = await failure(other.client.login());
    expect(e2.message).toBe(
      `login refused by ${other.fake.url} (HTTP 500): "Invalid username or password." Check username and password`,
    );
  });

  it("tries an HTML page (maintenance) a bounded number of times, then says what came back", async () => {
    const { fake, client, rec } = await setup();
    fake.mode = "html";
    const e = await failure(client.login());
    expect(e.kind).toBe("unavailable");
    expect(e.message).toBe(
      "login: the portal answered an HTML page (HTTP 200) instead of JSON; it may be down for maintenance (3 tries)",
    );
    expect(fake.requests).toHaveLength(3);
    expect(rec.at("warn")).toHaveLength(2);
    // Back to normal: the same client goes on.
    fake.mode = "ok";
    await client.login();
    expect(fake.logins.at(-1)).toEqual({ ok: true });
  });

  it("gives up on a portal that does not answer, after the timeout and the retries", async () => {
    const { fake, client } = await setup({}, { timeoutMs: 150, retryDelaysMs: [5] });
    fake.mode = "hang";
    const t0 = Date.now();
    const e = await failure(client.login());
    expect(e.kind).toBe("unavailable");
    expect(e.message).toBe("login: no answer within 150 ms (2 tries)");
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(fake.requests).toHaveLength(2);
  });

  it("stops at once when closed, in a request or between polls", async () => {
    const { fake, client } = await setup({}, { timeoutMs: 30_000, retryDelaysMs: [30_000], pollDelaysMs: [30_000] });
    fake.mode = "hang";
    const t0 = Date.now();
    const hung = client.login();
    setTimeout(() => client.close(), 50);
    expect((await failure(hung)).message).toBe("login: stopped");
    fake.mode = "pending";
    const waiting = client.poll({
      account: "900000001",
      serviceLocation: "70001",
      start: DAY_START,
      end: DAY_START + 86_400_000,
    });
    setTimeout(() => client.close(), 100);
    expect((await failure(waiting)).message).toBe("poll: stopped");
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("gives up on a poll that stays PENDING after the poll delays", async () => {
    const { fake, client } = await setup();
    await client.login();
    fake.mode = "pending";
    const e = await failure(
      client.poll({ account: "900000001", serviceLocation: "70001", start: DAY_START, end: DAY_START + 86_400_000 }),
    );
    expect(e.kind).toBe("pending");
    expect(e.message).toMatch(/^poll: still PENDING after 5 tries over \d+ s; the portal did not prepare the data$/);
    expect(fake.polls.map((p) => p.status)).toEqual(Array(5).fill("PENDING"));
  });

  it("logs in again when the portal refuses a token that ran out, and before it runs out", async () => {
    // Tokens the portal takes for two calls only, as one that expired mid-backfill.
    const { fake, client } = await setup({ tokenUses: 2, pending: 0 });
    let kwh = 0;
    for (let day = 0; day < 5; day++) {
      const start = DAY_START + day * 86_400_000;
      const answer = await client.poll({
        account: "900000001",
        serviceLocation: "70001",
        start,
        end: start + 86_400_000,
      });
      kwh += totals(decodePoll(answer, { meterId: "m" }).intervals).importKwh;
    }
    expect(fake.polls.filter((p) => p.status === "COMPLETE")).toHaveLength(5);
    expect(fake.unauthorized).toBe(2);
    expect(fake.logins).toHaveLength(3);
    expect(kwh).toBeGreaterThan(0);
    await fake.close();

    // The client's clock says the 299 s are nearly over: it logs in before sending, the portal refuses nothing.
    const clock = new ManualClock(Date.now());
    const early = await setup({ pending: 0 }, { clock, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) });
    await early.client.userData();
    clock.advance(250_000);
    await early.client.userData();
    expect(early.fake.logins).toHaveLength(1);
    clock.advance(30_000);
    await early.client.userData();
    expect(early.fake.logins).toHaveLength(2);
    expect(early.fake.unauthorized).toBe(0);
  });

  it("says when the portal cannot be reached, and when base_url is no SmartHub portal", async () => {
    const { client } = await setup();
    const down = new SmarthubClient({
      baseUrl: fake!.url.replace(/\d+$/, "1"),
      username: "u",
      password: PASSWORD,
      ...FAST,
    });
    clients.push(down);
    const e = await failure(down.login());
    expect(e.kind).toBe("unavailable");
    expect(e.message).toBe("login: cannot reach the portal (ECONNREFUSED) (3 tries)");
    await client.login();

    // A web server, but not a portal: its 404 page is not retried as if it were maintenance.
    const web = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "text/html" });
      res.end("<html><body>Not here</body></html>");
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    const notPortal = new SmarthubClient({ baseUrl: url, username: "u", password: PASSWORD, ...FAST });
    clients.push(notPortal);
    try {
      const e2 = await failure(notPortal.login());
      expect(e2.kind).toBe("answer");
      expect(e2.message).toBe(`login: no SmartHub portal at ${url} (HTTP 404): check base_url`);
      expect(notPortal.stats.requests).toBe(1);
    } finally {
      await new Promise<void>((r) => web.close(() => r()));
    }
  });
});

describe("windows and locations", () => {
  it("splits a range into windows of at most 45 days, bounded by local midnights", () => {
    const w = splitWindows("2025-01-01", "2025-12-31");
    expect(w).toHaveLength(9);
    expect(w[0]).toEqual({ from: "2025-01-01", to: "2025-02-14" });
    expect(w.at(-1)).toEqual({ from: "2025-12-27", to: "2025-12-31" });
    expect(splitWindows("2025-01-01", "2025-12-26")).toHaveLength(8);
    // Each day once: consecutive, no overlap.
    for (let i = 1; i < w.length; i++) expect(Date.parse(w[i]!.from) - Date.parse(w[i - 1]!.to)).toBe(86_400_000);
    // March: from midnight EST (05:00Z) to midnight EDT after the last day (04:00Z).
    expect(windowBounds({ from: "2025-03-01", to: "2025-03-31" }, "America/New_York")).toEqual({
      start: Date.parse("2025-03-01T05:00:00Z"),
      end: Date.parse("2025-04-01T04:00:00Z"),
    });
  });

  it("chooses the configured location, else the active primary electric one, and says what there is", () => {
    const data = [
      {
        account: "111",
        primaryServiceLocationId: "2",
        serviceLocationToIndustries: { "1": ["WATER"], "2": ["ELECTRIC"], "3": ["ELECTRIC"] },
        serviceLocationIdToServiceLocationSummary: { "3": { serviceStatus: "INACTIVE" } },
      },
      { account: "222", serviceLocationToIndustries: { "9": ["ELECTRIC"] }, inactive: true },
    ];
    const all = serviceLocations(data);
    expect(all.map((l) => [l.account, l.serviceLocation, l.electric, l.primary, l.active])).toEqual([
      ["111", "1", false, false, true],
      ["111", "2", true, true, true],
      ["111", "3", true, false, false],
      ["222", "9", true, false, false],
    ]);
    const pick = chooseLocation(all, {});
    expect("chosen" in pick && [pick.chosen.serviceLocation, pick.others.map((o) => o.serviceLocation)]).toEqual([
      "2",
      ["3", "9"],
    ]);
    const configured = chooseLocation(all, { account: "222" });
    expect("chosen" in configured && configured.chosen.serviceLocation).toBe("9");
    expect(chooseLocation(all, { account: "333" })).toEqual({
      error:
        "user-data has no account 333 (the login has: account 111 location 1 (not electric), account 111 location 2, account 111 location 3, account 222 location 9)",
    });
    expect(chooseLocation(all, { serviceLocation: "1" })).toEqual({
      error: "no electric service location among account 111 location 1 (not electric)",
    });
  });
});
