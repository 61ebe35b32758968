import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dsmr5Telegram, encryptTelegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";

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

  it("reads encrypted P1 with --key and --aad, as bytes or as spaced hex text, and says what is missing", () => {
    const key = "00112233445566778899aabbccddeeff";
    const aad = "0f0e0d0c0b0a09080706050403020100";
    const title = Buffer.from("SAG\x01\x02\x03\x04\x05", "latin1");
    const frames = states.map((s, i) =>
      encryptTelegram(dsmr5Telegram(s), {
        key: Buffer.from(key, "hex"),
        aad: Buffer.from(aad, "hex"),
        systemTitle: title,
        counter: 7 + i,
      }),
    );
    const bytes = Buffer.concat(frames);
    const hexText = Buffer.from(
      frames
        .map((f) =>
          f
            .toString("hex")
            .replace(/(..)/g, "$1 ")
            .replace(/(.{48})/g, "$1\n"),
        )
        .join("\n"),
    );
    for (const input of [bytes, hexText]) {
      const r = cli(["decode", "--format", "dsmr", "--key", key.toUpperCase(), "--aad", aad, "-"], input);
      expect(r.status).toBe(0);
      const lines = r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { time: string; meter: { crc: string } });
      expect(lines.map((l) => l.time)).toEqual(states.map((s) => new Date(s.time).toISOString()));
      expect(lines[0]!.meter.crc).toBe("encrypted");
    }
    const noKey = cli(["decode", "--format", "dsmr", "-"], bytes);
    expect(noKey.stdout).toBe("");
    expect(noKey.stderr.trim().split("\n")).toEqual(
      frames.map(
        (f) =>
          `rejected encrypted telegram (${f.length} bytes): no key given: add --key (and --aad when you have an authentication key)`,
      ),
    );
    const badKey = cli(["decode", "--format", "dsmr", "--key", "abc", "-"], bytes);
    expect(badKey.status).toBe(2);
    expect(badKey.stderr).toBe("decode: --key expects 32 hex digits (the 16-byte key from your grid operator)\n");
  });
});
