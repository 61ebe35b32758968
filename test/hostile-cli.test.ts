/**
 * Issue 14, the command line: every usage, configuration and start-up error is one line on stderr naming the cause,
 * exit 2 for a usage or configuration mistake and 1 for a failure while running; a stack trace only with --debug.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const cli = (args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });

describe("errors of the command line", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "m2m-hostile-cli-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const oneLine = (stderr: string): string => {
    const lines = stderr.split("\n").filter((l) => l !== "");
    expect(lines, stderr).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at /);
    return lines[0] as string;
  };

  it("an unknown option: one line, exit 2", () => {
    const r = cli(["run", "--bogus"]);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toBe("meter2mqtt: Unknown option '--bogus' (see meter2mqtt --help)");
  });

  it("a missing or unreadable configuration: one line, exit 2", () => {
    const r = cli(["run", "--config", join(dir, "nope.yaml")]);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toBe(`meter2mqtt: cannot read ${join(dir, "nope.yaml")}: ENOENT`);
  });

  it("YAML that does not parse, and keys that are wrong: one line each, exit 2", () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "mqtt:\n  url: [unclosed\nmeters:\n  - id: x\n");
    const r = cli(["run", "--config", broken]);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/^meter2mqtt: .*broken\.yaml is not valid YAML: /);

    const wrong = join(dir, "wrong.yaml");
    writeFileSync(
      wrong,
      'mqtt: {passwrd: x, discovery_prefix: "+"}\nmeters:\n  - {id: p1, type: dsmr, port: /dev/ttyUSB0, baud: 1234}\n',
    );
    const w = cli(["run", "--config", wrong]);
    expect(w.status).toBe(2);
    const line = oneLine(w.stderr);
    expect(line).toMatch(/^meter2mqtt: invalid .*wrong\.yaml: /);
    expect(line).toContain('mqtt: unknown key "passwrd"');
    expect(line).toContain("mqtt.discovery_prefix: expected letters, digits");
    expect(line).toContain("meters[0].baud");
  });

  it("a failure while starting (the archive cannot be created): one line, exit 1; --debug adds the stack", () => {
    const config = join(dir, "archive.yaml");
    writeFileSync(
      config,
      [
        "mqtt: {url: mqtt://127.0.0.1:9}",
        `archive: {path: ${join(dir, "not-a-dir.txt", "a.sqlite")}}`,
        "meters:",
        "  - {id: p1, type: dsmr, port: /dev/null-meter}",
        "",
      ].join("\n"),
    );
    writeFileSync(join(dir, "not-a-dir.txt"), "a file where a folder should be\n");
    const r = cli(["run", "--config", config]);
    expect(r.status).toBe(1);
    const errors = r.stderr.split("\n").filter((l) => /^meter2mqtt: /.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^meter2mqtt: .*not-a-dir\.txt/);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const d = cli(["run", "--config", config, "--debug"]);
    expect(d.status).toBe(1);
    expect(d.stderr).toMatch(/\n\s+at /);
  });
});
