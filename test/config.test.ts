import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../src/config/load.js";
import { createLogger, setLogSink } from "../src/util/log.js";

const meter = { id: "home", type: "dsmr", port: "/dev/ttyUSB0" };

function issues(input: unknown): string[] {
  try {
    parseConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("fills the defaults of the design's shape", () => {
    const c = parseConfig({ meters: [meter] });
    expect(c.mqtt).toMatchObject({
      url: "mqtt://127.0.0.1:1883",
      base_topic: "meter2mqtt",
      discovery_prefix: "homeassistant",
    });
    expect(c.mqtt.min_interval).toMatchObject({ power: 5, energy: 10, voltage: 30 });
    expect(c.archive).toEqual({ enabled: true, path: "./data/meter2mqtt.sqlite", interval: 60 });
    expect(c.meters[0]).toMatchObject({ baud: "auto", timezone: "Europe/Amsterdam", timeout: 30 });
  });

  it("names the key path and what was expected", () => {
    expect(issues({ meters: [{ ...meter, baud: 1234 }] })).toEqual([
      'meters[0].baud: expected one of "auto", 115200, 9600 (got 1234)',
    ]);
    expect(issues({ meters: [{ ...meter, id: "My Meter" }] })[0]).toMatch(
      /^meters\[0\]\.id: expected lowercase letters/,
    );
    expect(issues({ meters: [{ ...meter, port: "COMX" }] })[0]).toMatch(/^meters\[0\]\.port: expected a serial device/);
    expect(issues({ mqtt: { url: "localhost" }, meters: [meter] })[0]).toMatch(
      /^mqtt\.url: expected a URL like mqtt:\/\/host:1883 .*\(got "localhost"\)$/,
    );
    expect(issues({ mqtt: { passwrd: "x" }, meters: [meter] })).toEqual(['mqtt: unknown key "passwrd"']);
    expect(issues({ meters: [{ ...meter, type: "pulse" }] })[0]).toMatch(
      /^meters\[0\]\.type: expected one of the supported meter types/,
    );
    expect(issues({ meters: [] })).toEqual(["meters: expected at least one meter"]);
    expect(issues({})).toEqual(["meters: missing, expected array"]);
    expect(issues({ meters: [meter, meter] })).toEqual(['meters[1].id: duplicate meter id "home" (got "home")']);
  });

  it("never echoes a secret, in errors or in the log", () => {
    const secret = "hunter2-very-secret";
    const text = issues({ mqtt: { password: 42, url: "mqtt://u:x@h:1883" }, meters: [meter] }).join("\n");
    expect(text).not.toContain("42");
    const c = parseConfig({ mqtt: { password: secret }, meters: [meter] });
    expect(c.mqtt.password).toBe(secret);
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    createLogger("t").error(`connect failed for user:${secret}@broker`);
    expect(lines.join("\n")).not.toContain(secret);
    expect(lines.join("\n")).toContain("user:***@broker");
  });

  it("reads YAML files and add-on options.json, and says which file is broken", () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-cfg-"));
    writeFileSync(
      join(dir, "c.yaml"),
      "mqtt:\n  url: mqtt://broker:1883\nmeters:\n  - {id: p1, type: dsmr, port: tcp://10.0.0.5:8088}\n",
    );
    expect(loadConfig(join(dir, "c.yaml")).config.meters[0]).toMatchObject({ port: "tcp://10.0.0.5:8088" });
    writeFileSync(join(dir, "options.json"), JSON.stringify({ meters: [meter] }));
    expect(loadConfig(join(dir, "options.json")).config.meters[0]!.id).toBe("home");
    writeFileSync(join(dir, "bad.yaml"), "meters: [\n");
    expect(() => loadConfig(join(dir, "bad.yaml"))).toThrow(/bad\.yaml is not valid YAML/);
    expect(() => loadConfig(join(dir, "missing.yaml"))).toThrow(/cannot read .*missing\.yaml: ENOENT/);
  });
});
