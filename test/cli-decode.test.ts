import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dsmr5Telegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";

const ROOT = join(import.meta.dirname, "..");
const cli = (args: string[], input?: Buffer) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: ROOT, input, encoding: "utf8" });

describe("meter2mqtt decode --format dsmr", () => {
  const states = simulate(Date.UTC(2026, 2, 29, 0, 59, 58), 3, 1, true);
  const good = dsmr5Telegram(states[0]!);
  const bad = Buffer.from(dsmr5Telegram(states[1]!));
  bad[100] = bad[100] === 0x30 ? 0x31 : 0x30;
  const be = fluviusTelegram(states[2]!, "Europe/Brussels");
  const capture = Buffer.concat([Buffer.from("tail of an earlier telegram\r\n!1234\r\n"), good, bad, be]);

  it("prints one JSON object per telegram on stdout and one line per rejected frame on stderr", () => {
    const dir = mkdtempSync(join(tmpdir(), "m2m-decode-"));
    writeFileSync(join(dir, "cap.txt"), capture);
    const r = cli(["decode", "--format", "dsmr", join(dir, "cap.txt")]);
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { time: string; values: Record<string, unknown> });
    expect(lines).toHaveLength(2);
    // 00:59:58 UTC on the spring-forward day: 01:59:58 winter time in Amsterdam; the next at 03:00:00 summer time.
    expect(lines[0]!.time).toBe("2026-03-29T00:59:58.000Z");
    expect(lines[1]!.time).toBe("2026-03-29T01:00:00.000Z");
    expect(lines[1]!.values).toMatchObject({
      water_m3: states[2]!.waterM3 !== undefined ? expect.any(Number) : undefined,
    });
    expect(r.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(
        /^rejected telegram \(\d+ bytes\): CRC mismatch: telegram says [0-9A-F]{4}, computed [0-9A-F]{4}$/,
      ),
    ]);
  });

  it("reads standard input with -", () => {
    const r = cli(["decode", "--format", "dsmr", "-"], good);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).values.power_import_w).toBe(states[0]!.phaseImportW.reduce((a, b) => a + b, 0));
  });

  it("refuses an unknown format and names the ones it knows", () => {
    const r = cli(["decode", "--format", "xml", "-"], Buffer.alloc(0));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format xml is not supported; expected one of: dsmr/);
  });
});
