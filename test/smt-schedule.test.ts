import { describe, expect, it } from "vitest";
import { type ConfigError, parseConfig } from "../src/config/load.js";
import { secretsOf } from "../src/config/schema.js";
import { isYesterdayComplete, nextCheckAt } from "../src/sources/smt/index.js";

const cfg = { check_at: "11:30", timezone: "America/Chicago", recheck_minutes: 60 };
const at = (iso: string): number => Date.parse(iso);

describe("Smart Meter Texas schedule", () => {
  it.each([
    // now (UTC),                 yesterday complete, next check (UTC)
    ["2025-06-16T08:00:00Z", false, "2025-06-16T16:30:00Z"], // 03:00 CDT: today's 11:30 CDT
    ["2025-06-16T16:30:00Z", false, "2025-06-16T17:30:00Z"], // at 11:30 and the email is not there: an hour later
    ["2025-06-16T16:30:00Z", true, "2025-06-17T16:30:00Z"], // it came: tomorrow
    ["2025-06-17T04:30:00Z", false, "2025-06-17T16:30:00Z"], // 23:30 CDT: no recheck past midnight
    ["2025-01-16T12:00:00Z", false, "2025-01-16T17:30:00Z"], // winter: 11:30 CST is 17:30Z
    ["2025-03-08T18:00:00Z", true, "2025-03-09T16:30:00Z"], // over the spring-forward night: 11:30 CDT
    ["2025-11-01T18:00:00Z", true, "2025-11-02T17:30:00Z"], // over the fall-back night: 11:30 CST
  ])("at %s (yesterday complete: %s) checks next at %s", (now, complete, next) => {
    expect(new Date(nextCheckAt(at(now), cfg, complete)).toISOString()).toBe(new Date(next).toISOString());
  });

  it("knows whether yesterday, in the meter's zone, is complete", () => {
    // 2025-06-16T03:00Z is still the 15th in Chicago: yesterday is the 14th.
    expect(isYesterdayComplete(at("2025-06-16T03:00:00Z"), "America/Chicago", "2025-06-14")).toBe(true);
    expect(isYesterdayComplete(at("2025-06-16T06:00:00Z"), "America/Chicago", "2025-06-14")).toBe(false);
    expect(isYesterdayComplete(at("2025-06-16T06:00:00Z"), "America/Chicago", undefined)).toBe(false);
  });
});

describe("Smart Meter Texas configuration", () => {
  const imap = {
    host: "imap.mail.yahoo.com",
    user: "me@yahoo.com",
    password: "app-pass-9977",
    sender: "noreply@smartmetertexas.com",
  };

  it("fills in the defaults and keeps the IMAP password out of anything printed", () => {
    const c = parseConfig({ meters: [{ id: "texas", type: "smt", imap, esiid: "'10443720000000001" }] });
    expect(c.meters[0]).toMatchObject({
      type: "smt",
      timezone: "America/Chicago",
      check_at: "11:30",
      esiid: "10443720000000001",
      imap: { port: 993, tls: true, mailbox: "INBOX" },
    });
    expect(secretsOf(c)).toContain("app-pass-9977");
  });

  it("names the key and what was expected", () => {
    const problems = (meter: Record<string, unknown>): string[] => {
      try {
        parseConfig({ meters: [{ id: "texas", type: "smt", ...meter }] });
        return [];
      } catch (err) {
        return (err as ConfigError).issues;
      }
    };
    expect(problems({})).toEqual(["meters[0].imap: missing: set imap (the daily email), folder, or both"]);
    expect(problems({ folder: "/share/smt", check_at: "25:00" })).toEqual([
      'meters[0].check_at: expected a time HH:MM (got "25:00")',
    ]);
    expect(problems({ folder: "/x", timezone: "Texas/Houston" })).toEqual([
      'meters[0].timezone: expected an IANA time zone like America/Chicago (got "Texas/Houston")',
    ]);
    expect(problems({ imap: { ...imap, sender: "smt" } })).toEqual([
      'meters[0].imap.sender: expected an email address (got "smt")',
    ]);
    const pw = problems({ imap: { ...imap, password: "" } });
    expect(pw).toHaveLength(1);
    expect(pw[0]).toMatch(/^meters\[0\]\.imap\.password: /);
    expect(problems({ type: "smtx" } as Record<string, unknown>)[0]).toMatch(
      /supported meter types \(dsmr, han, raven, smt, smarthub\)/,
    );
  });
});
