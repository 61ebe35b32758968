/**
 * Conformance against the public DLMS/HDLC samples in ../shared/data/dlms (frames from athombv/node-dsmr-parser's
 * test suite, each with the values that parser reports: energy in Wh, power in W). A user's clone has no
 * ../shared: then this file skips with a message; CI always has it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NUMERIC, UNIT_EXP } from "../src/sources/dsmr/obis.js";
import { hanDecoder } from "../src/sources/han/cli.js";
import type { HanTelegram } from "../src/sources/han/decode.js";
import { type HanItem, HanStream } from "../src/sources/han/stream.js";
import type { DecodeItem } from "../src/sources/index.js";
import { spawnCli } from "./helpers/bridge.js";

const DIR = join(import.meta.dirname, "../../shared/data/dlms");
const have = existsSync(DIR);
if (!have) console.warn(`skipping HAN conformance: ${DIR} not found (it exists in CI)`);

const KEY = Buffer.from("0123456789abcdef0123456789abcdef", "hex");
const AAD = Buffer.from("ffeeddccbbaa99887766554433221100", "hex");

const hexFile = (name: string): Buffer =>
  Buffer.from(readFileSync(join(DIR, `${name}.txt`), "utf8").replace(/\s+/g, ""), "hex");

function read(bytes: Buffer, stream = new HanStream()): HanItem[] {
  return [...stream.push(bytes), ...stream.end()];
}

function decodeOne(name: string, stream?: HanStream): HanTelegram {
  const items = read(hexFile(name), stream);
  expect(items.map((i) => (i.ok ? "ok" : i.reason))).toEqual(["ok"]);
  return (items[0] as { telegram: HanTelegram }).telegram;
}

interface Sample {
  cosem: { knownObjects: string[]; unknownObjects: string[]; id?: string };
  electricity: {
    powerReceivedTotal?: number;
    powerReturnedTotal?: number;
    current?: Record<string, number>;
    voltage?: Record<string, number>;
    powerReceived?: Record<string, number>;
    powerReturned?: Record<string, number>;
    total?: { received?: number; returned?: number };
  };
  metadata: { serialNumber?: string };
}

const byObis = new Map([...NUMERIC].reverse().map(([code, name]) => [code, name]));

/** What the sample's parser reports, in the catalogue's names and units (kWh, kvarh, W, var, V, A). */
function expected(s: Sample): Map<string, number | null> {
  const out = new Map<string, number | null>();
  const e = s.electricity;
  if (e.powerReceivedTotal !== undefined) out.set("power_import_w", e.powerReceivedTotal);
  if (e.powerReturnedTotal !== undefined) out.set("power_export_w", e.powerReturnedTotal);
  for (const [p, v] of Object.entries(e.current ?? {})) out.set(`current_${p}_a`, v);
  for (const [p, v] of Object.entries(e.voltage ?? {})) out.set(`voltage_${p}_v`, v);
  for (const [p, v] of Object.entries(e.powerReceived ?? {})) out.set(`power_import_${p}_w`, v);
  for (const [p, v] of Object.entries(e.powerReturned ?? {})) out.set(`power_export_${p}_w`, v);
  if (e.total?.received !== undefined) out.set("energy_import_kwh", e.total.received / 1000);
  if (e.total?.returned !== undefined) out.set("energy_export_kwh", e.total.returned / 1000);
  // Objects that parser does not map (reactive power and energy) but names with their value.
  for (const o of [...s.cosem.knownObjects, ...s.cosem.unknownObjects]) {
    const m = /^1-[01]:(\d+)\.(\d+)\.(\d+)\(([^*)]*)(?:\*([^)]*))?\)$/.exec(o);
    if (!m) continue;
    const name = byObis.get(`1-0:${m[1]}.${m[2]}.${m[3]}`);
    if (!name || out.has(name)) continue;
    if (m[4] === "null") {
      out.set(name, null);
      continue;
    }
    // Energy registers without a unit are in Wh or varh, as the parser reports energy.
    const exp = m[5] ? UNIT_EXP[m[5]]!.exp : m[2] === "8" ? -3 : 0;
    out.set(name, Number(m[4]) * 10 ** exp);
  }
  return out;
}

const SAMPLES = ["aidon-example-1", "aidon-example-2", "kamstrup-example-1", "iskra-1", "slovenia-list-1"];

describe.skipIf(!have)("HAN samples equal the values beside them", () => {
  for (const name of SAMPLES) {
    it(name, () => {
      const t = decodeOne(name);
      const sample = JSON.parse(readFileSync(join(DIR, `${name}.json`), "utf8")) as Sample;
      const want = expected(sample);
      expect(want.size).toBeGreaterThan(0);
      for (const [q, v] of want) {
        if (v === null) expect(t.values[q], q).toBeUndefined();
        else {
          expect(typeof t.values[q], q).toBe("number");
          expect(t.values[q]!, q).toBeCloseTo(v, 9);
        }
      }
      // Nothing reported that the sample does not have (power_net_w is import − export, computed).
      const extra = Object.keys(t.values).filter((q) => !want.has(q) && q !== "power_net_w");
      expect(extra).toEqual([]);
      if (t.values.power_import_w !== undefined)
        expect(t.values.power_net_w).toBeCloseTo(t.values.power_import_w - (t.values.power_export_w ?? 0), 9);
    });
  }

  it("reads the meter's identity: list version, meter id and type", () => {
    expect(decodeOne("aidon-example-1").meter).toEqual({
      version: "AIDON_V0001",
      meterId: "7359992890941742",
      meterType: "6515",
      manufacturer: "Aidon",
    });
    expect(decodeOne("kamstrup-example-1").meter).toMatchObject({
      version: "Kamstrup_V0001",
      meterId: "5706567000000000",
      manufacturer: "Kamstrup",
    });
    const slo = JSON.parse(readFileSync(join(DIR, "slovenia-list-1.json"), "utf8")) as Sample;
    expect(decodeOne("slovenia-list-1").meter).toEqual({
      name: slo.cosem.id,
      meterId: slo.metadata.serialNumber,
      manufacturer: "Iskra",
    });
    expect(decodeOne("iskra-1").meter.meterId).toBe("2221202033801");
  });

  it("takes the meter's clock: the list's clock object, else the notification's date-time, in UTC", () => {
    // Aidon sends no deviation: the time is the meter's zone's (Norway, winter: UTC+1).
    expect(new Date(decodeOne("aidon-example-2").time!).toISOString()).toBe("2019-12-16T06:59:40.000Z");
    // With a deviation of -60 min (CET) and -120 min with the DST bit (CEST) in the notification header.
    expect(new Date(decodeOne("iskra-1").time!).toISOString()).toBe("2021-03-07T13:55:33.000Z");
    expect(new Date(decodeOne("slovenia-list-1").time!).toISOString()).toBe("2025-09-04T08:00:10.000Z");
    expect(decodeOne("aidon-example-1").time).toBeUndefined();
    // The meter's zone decides when it sends no deviation.
    const helsinki = new HanStream({ timezone: "Europe/Helsinki" });
    expect(new Date(decodeOne("aidon-example-2", helsinki).time!).toISOString()).toBe("2019-12-16T05:59:40.000Z");
  });
});

describe.skipIf(!have)("the encrypted sample", () => {
  const enc = "encrypted/aidon-example-2-with-aad";

  it("decrypts with its key and authentication key to the plain frame's values", () => {
    const t = decodeOne(enc, new HanStream({ key: KEY, aad: AAD }));
    const plain = decodeOne("aidon-example-2");
    expect(t.encrypted).toBe(true);
    expect(t.values).toEqual(plain.values);
    expect(t.time).toBe(plain.time);
  });

  it("is refused without the key, without the authentication key, or with a wrong one", () => {
    const noKey = read(hexFile(enc));
    expect(noKey).toMatchObject([{ ok: false, noKey: true }]);
    const noAad = read(hexFile(enc), new HanStream({ key: KEY }));
    expect(noAad).toMatchObject([{ ok: false }]);
    expect((noAad[0] as { reason: string }).reason).toMatch(/authentication failed/);
    const wrong = Buffer.from(KEY);
    wrong[0]! ^= 1;
    expect(read(hexFile(enc), new HanStream({ key: wrong, aad: AAD }))).toMatchObject([{ ok: false }]);
  });

  it("refuses the same frame replayed (frame counter not above the last)", () => {
    const s = new HanStream({ key: KEY, aad: AAD });
    const b = hexFile(enc);
    const items = read(Buffer.concat([b, b]), s);
    expect(items.map((i) => i.ok)).toEqual([true, false]);
    expect((items[1] as { reason: string }).reason).toMatch(/frame counter/);
  });

  it("the key never appears in what is reported", () => {
    const items = read(hexFile(enc), new HanStream({ key: KEY }));
    const text = JSON.stringify(items);
    expect(text).not.toContain(KEY.toString("hex"));
    expect(text).not.toContain(AAD.toString("hex"));
  });
});

describe.skipIf(!have)("decode --format han", () => {
  async function run(bytes: Buffer, opts: { key?: string; aad?: string } = {}): Promise<DecodeItem[]> {
    const out: DecodeItem[] = [];
    async function* input(): AsyncIterable<Buffer> {
      // In pieces, as a pipe delivers them.
      for (let i = 0; i < bytes.length; i += 100) yield bytes.subarray(i, i + 100);
    }
    for await (const it of hanDecoder(input(), { source: "-", ...opts })) out.push(it);
    return out;
  }

  it("reads the samples' spaced hex text and raw bytes alike", async () => {
    const text = readFileSync(join(DIR, "aidon-example-2.txt"));
    const fromHex = await run(text);
    const fromBytes = await run(hexFile("aidon-example-2"));
    expect(fromHex).toHaveLength(1);
    expect(fromHex).toEqual(fromBytes);
    const j = (fromHex[0] as { json: { time: string; values: Record<string, number> } }).json;
    expect(j.time).toBe("2019-12-16T06:59:40.000Z");
    expect(j.values.energy_import_kwh).toBeCloseTo(10049.926, 9);
  });

  it("is a format of the command: one JSON line per frame, rejected ones on stderr", async () => {
    const p = spawnCli([
      "decode",
      "--format",
      "han",
      "--key",
      KEY.toString("hex").toUpperCase(),
      join(DIR, "encrypted/aidon-example-2-with-aad.txt"),
    ]);
    expect(await p.exit).toBe(0);
    // Without the authentication key the frame is refused, and the key is not repeated back.
    expect(p.output()).toMatch(/authentication failed/);
    expect(p.output().toLowerCase()).not.toContain(KEY.toString("hex"));
    const ok = spawnCli(["decode", "--format", "han", join(DIR, "kamstrup-example-1.txt")]);
    expect(await ok.exit).toBe(0);
    const line = JSON.parse(ok.output().trim()) as { meter: { manufacturer: string } };
    expect(line.meter.manufacturer).toBe("Kamstrup");
  }, 30_000);

  it("decrypts with --key and --aad; says what is missing without them", async () => {
    const text = readFileSync(join(DIR, "encrypted/aidon-example-2-with-aad.txt"));
    const ok = await run(text, { key: KEY.toString("hex"), aad: AAD.toString("hex") });
    expect(ok).toMatchObject([{ ok: true }]);
    const missing = await run(text);
    expect(missing).toMatchObject([{ ok: false }]);
    expect((missing[0] as { reason: string }).reason).toMatch(/--key/);
  });
});
