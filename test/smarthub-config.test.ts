/**
 * A SmartHub meter in the configuration file and in the add-on's options: defaults, errors that name the key
 * without echoing a secret, and the secrets registered before anything is logged.
 */
import { describe, expect, it } from "vitest";
import { addonToConfig, optionSecrets } from "../src/addon/index.js";
import { type ConfigError, parseConfig } from "../src/config/load.js";
import { secretsOf } from "../src/config/schema.js";

const meter = {
  id: "coop",
  type: "smarthub",
  base_url: "https://novec.smarthub.coop",
  username: "member@example.com",
  password: "portal pass 1",
};

const problems = (m: Record<string, unknown>): string[] => {
  try {
    parseConfig({ meters: [m] });
    return [];
  } catch (err) {
    return (err as ConfigError).issues;
  }
};

describe("SmartHub configuration", () => {
  it("fills in the defaults and keeps both secrets out of the logs", () => {
    const cfg = parseConfig({ meters: [{ ...meter, totp_secret: "JBSW Y3DP EHPK 3PXP" }] });
    expect(cfg.meters[0]).toEqual({
      ...meter,
      totp_secret: "JBSW Y3DP EHPK 3PXP",
      timezone: "America/New_York",
      fetch_every_hours: 6,
      refetch_days: 3,
      currency: "USD",
    });
    expect(secretsOf(cfg)).toEqual(expect.arrayContaining(["portal pass 1", "JBSW Y3DP EHPK 3PXP"]));
  });

  it("names what is wrong by its key, without repeating a secret", () => {
    expect(problems({ id: "coop", type: "smarthub" })).toEqual([
      "meters[0].base_url: missing, expected string",
      "meters[0].username: missing, expected string",
      "meters[0].password: missing, expected string",
    ]);
    expect(problems({ ...meter, base_url: "https://novec.smarthub.coop/portal/#/login" })).toEqual([
      'meters[0].base_url: expected the portal\'s address, like https://novec.smarthub.coop (got "https://novec.smarthub.coop/portal/#/login")',
    ]);
    expect(problems({ ...meter, totp_secret: "123456" })).toEqual([
      "meters[0].totp_secret: expected the base32 secret shown when two-factor login was set up",
    ]);
    expect(problems({ ...meter, currency: "$" })).toEqual([
      'meters[0].currency: expected an ISO 4217 currency code like USD (got "$")',
    ]);
    expect(problems({ ...meter, type: "smarthubb" })[0]).toBe(
      "meters[0].type: expected one of the supported meter types (dsmr, han, raven, smt, smarthub)",
    );
  });
});

describe("SmartHub in the add-on", () => {
  const ctx = { dataDir: "/data", supervisorUrl: "http://supervisor", supervisorToken: "0123abcd" };
  const options = {
    mqtt: { url: "mqtt://broker:1883" },
    archive: { enabled: true, interval: 60 },
    homeassistant: {},
    log_level: "info",
  };

  it("passes the flat options through, turns statistics on, and says which portal it reads", () => {
    const opts = {
      ...options,
      meters: [{ ...meter, totp_secret: "JBSWY3DPEHPK3PXP", account: "", port: "", tcp: "" }],
    };
    const { config, decisions } = addonToConfig(opts, ctx);
    const cfg = parseConfig(config);
    expect(cfg.meters[0]).toMatchObject({ ...meter, totp_secret: "JBSWY3DPEHPK3PXP" });
    expect(cfg.meters[0]).not.toHaveProperty("account");
    expect(cfg.homeassistant.statistics).toBe(true);
    expect(decisions).toContain(
      "meter coop (smarthub): the portal https://novec.smarthub.coop, user member@example.com, two-factor login",
    );
    expect(decisions).toContain(
      "Home Assistant: long-term statistics on for the SmartHub meter(s) coop (homeassistant.statistics left blank)",
    );
    const both = addonToConfig(
      { ...options, meters: [{ id: "texas", type: "smt", folder: "/share/smt" }, meter], archive: { enabled: false } },
      ctx,
    );
    expect(both.decisions).toContain(
      "archive: off in the options, so the SMT and SmartHub meter(s) texas, coop read nothing (their data are kept in the archive)",
    );
    expect(optionSecrets(opts)).toEqual(expect.arrayContaining(["portal pass 1", "JBSWY3DPEHPK3PXP"]));
  });
});
