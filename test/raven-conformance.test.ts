/**
 * Conformance against the public RAVEn / EMU-2 samples in ../shared/data/raven (aioraven's test fixtures,
 * Rainforest's own README and sample file, real device captures), with the decoding its SOURCES.md states.
 * A user's clone has no ../shared: then this file skips with a message; CI always has it.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DECODERS, type DecodeItem } from "../src/sources/index.js";
import { currentSummation, instantaneousDemand } from "../src/sources/raven/build.js";

const DIR = join(import.meta.dirname, "../../shared/data/raven");
const have = existsSync(DIR);
if (!have) console.warn(`skipping RAVEn conformance: ${DIR} not found (it exists in CI)`);

async function decode(...chunks: Buffer[]): Promise<DecodeItem[]> {
  async function* input(): AsyncIterable<Buffer> {
    yield* chunks;
  }
  const out: DecodeItem[] = [];
  for await (const item of (await DECODERS.raven!())(input(), { source: "test" })) out.push(item);
  return out;
}
const sample = (name: string): Buffer => readFileSync(join(DIR, name));
type Json = Record<string, unknown>;
const json = (items: DecodeItem[]): Json[] => items.flatMap((i) => (i.ok ? [i.json as Json] : []));
const rejected = (items: DecodeItem[]): string[] => items.flatMap((i) => (i.ok ? [] : [i.reason]));
async function one(name: string): Promise<Json> {
  const items = await decode(sample(name));
  expect(rejected(items)).toEqual([]);
  expect(items).toHaveLength(1);
  return json(items)[0]!;
}

const AIORAVEN = { device_mac: "0123456789ABCDEF", meter_mac: "FEDCBA9876543210", time: "2022-03-11T00:47:35.000Z" };

/** SOURCES.md's "expected decode" column, in this project's names and units (kW → W). */
const EXPECTED: Record<string, Json> = {
  "aioraven_InstantaneousDemand.xml": {
    ...AIORAVEN,
    values: { power_net_w: 32000, power_import_w: 32000, power_export_w: 0 },
  },
  "aioraven_InstantaneousDemand_negative.xml": {
    ...AIORAVEN,
    values: { power_net_w: -32000, power_import_w: 0, power_export_w: 32000 },
  },
  "aioraven_InstantaneousDemand_negative_no_slz.xml": { values: { power_net_w: -32000 } },
  "aioraven_InstantaneousDemand_no_digits_right.xml": { values: { power_net_w: 32000 } },
  "aioraven_CurrentSummationDelivered.xml": {
    ...AIORAVEN,
    values: { energy_import_kwh: 32, energy_export_kwh: 16 },
  },
  "aioraven_CurrentSummationDelivered_rounding.xml": { values: { energy_import_kwh: 31.95, energy_export_kwh: 16.04 } },
  "aioraven_CurrentSummationDelivered_no_received.xml": {
    values: { energy_import_kwh: 32 },
    received_kwh: null,
  },
  "aioraven_PriceCluster.xml": {
    ...AIORAVEN,
    values: { price_per_kwh: 0.2, currency: "USD" },
    tier: 8,
    tier_label: "Set by User",
    rate_label: "Set by User",
  },
  "aioraven_PriceCluster_no_time_stamp.xml": { time: null, values: { price_per_kwh: 0.2, currency: "USD" } },
  "aioraven_DeviceInfo.xml": {
    values: { firmware: "1.21g" },
    hardware: "5.55 rev 2",
    image_type: "Mocked",
    manufacturer: "aioraven",
    model: "Python",
    date_code: { date: "2022-01-01", lot: "a0000042" },
  },
  "aioraven_DeviceInfo_datecode_filler.cp1252.xml": { values: { firmware: "1.21g" }, date_code: null },
  "aioraven_NetworkInfo.xml": {
    values: { connection_status: "Connected", link_strength_pct: 36 },
    description: "Network is operational",
    status_code: 0x42,
    ext_pan_id: "9876543210ABCDEF",
    channel: 24,
    short_address: 0x5678,
  },
  "aioraven_MeterList_zero.xml": { meters: [] },
  "aioraven_MeterList_two.xml": { meters: ["FEDCBA9876543210", "FEDCBA0123456789"] },
  "aioraven_MeterInfo.xml": {
    meter_type: "electric",
    nickname: "House",
    account: "8675309",
    host: "Example, Inc.",
    enabled: true,
  },
  "aioraven_TimeCluster.xml": { utc: "2022-03-11T00:47:35.000Z", local: "2022-03-10T16:47:35" },
  "aioraven_MessageCluster.xml": {
    id: 0x02468ace,
    text: "Hello, World!",
    confirmation_required: false,
    confirmed: true,
    queue: "Active",
  },
  "aioraven_ScheduleInfo.xml": { event: "summation", frequency_s: 324508639, enabled: true },
  "aioraven_CurrentPeriodUsage.xml": { usage_kwh: 32, start: "2022-02-25T00:47:35.000Z" },
  "aioraven_LastPeriodUsage.xml": {
    usage_kwh: 32,
    start: "2022-03-11T00:47:35.000Z",
    end: "2022-04-11T00:47:35.000Z",
  },
  "aioraven_ProfileData.xml": { end_time: "2022-03-11T00:47:35.000Z", status: 0, interval_minutes: 30 },
  "aioraven_Warning_unknown_command.xml": { fragment: "Warning", text: "Unknown command" },
  "aioraven_Warning_generic.xml": { fragment: "Warning", text: "Something unexpected happened" },
  "emu_serial_api_README_NetworkInfo.xml": {
    device_mac: "D8D5B900000041D7",
    values: { connection_status: "Connected", link_strength_pct: 100 },
    description: "Successfully Joined",
    channel: 18,
  },
  "emu_serial_api_README_CurrentSummationDelivered.xml": {
    time: "2015-03-09T17:21:47.000Z",
    values: { energy_import_kwh: 113007.485, energy_export_kwh: 0 },
  },
  "emu_serial_api_sample_BlockPriceDetail.xml": {
    time: "2014-02-13T23:59:16.000Z",
    currency: "USD",
    blocks: [
      { threshold_kwh: 414, price_per_kwh: 0.14764 },
      { threshold_kwh: 538.2, price_per_kwh: 0.17077 },
      { threshold_kwh: 828, price_per_kwh: 0.32737 },
      { threshold_kwh: null, price_per_kwh: 0.34737 },
    ],
  },
  "real_raven_crlf_InstantaneousDemand.xml": {
    time: "2015-04-15T06:43:49.000Z",
    values: { power_net_w: 1234, power_import_w: 1234, power_export_w: 0 },
  },
  "real_raven_crlf_CurrentSummationDelivered.xml": { values: { energy_import_kwh: 35395.554, energy_export_kwh: 0 } },
  "real_emu2_InstantaneousDemand.xml": {
    device_mac: "D8D5B9000000F919",
    time: "2018-12-27T22:38:34.000Z",
    values: { power_net_w: 964, power_import_w: 964, power_export_w: 0 },
  },
};

/** Not one well-formed fragment each: what the stream must survive, and what a reader must report. */
const STREAMS: Record<string, { fragments: string[]; rejected: RegExp[] }> = {
  "aioraven_stream_leftovers_then_MeterList.xml": {
    fragments: ["MeterList"],
    rejected: [/^unexpected <\/Leftovers>/],
  },
  "aioraven_stream_MeterList_then_partial.xml": {
    fragments: ["MeterList"],
    rejected: [/<DeviceInfo> not closed/],
  },
  "aioraven_stream_stray_close_tag.xml": { fragments: [], rejected: [/^unexpected <\/DeviceInfo>/] },
  "emu_serial_api_sample_DeviceInfo_MALFORMED.xml": {
    fragments: [],
    rejected: [/^<DeviceInfo>: <ModelId> closed by <\/ModlId>/],
  },
};

const IDS = { deviceMac: "D8D5B9000000F919", meterMac: "00135003004653A5" };
const T = Date.UTC(2026, 0, 15, 12, 0, 0);

describe.skipIf(!have)("RAVEn conformance (../shared/data/raven)", () => {
  const files = have ? readdirSync(DIR).filter((f) => f.endsWith(".xml")) : [];

  it("has an expectation for every sample in the folder", () => {
    expect(files.filter((f) => !(f in EXPECTED) && !(f in STREAMS))).toEqual([]);
  });

  it.each(Object.keys(EXPECTED))("%s decodes as SOURCES.md says", async (file) => {
    expect(await one(file)).toMatchObject(EXPECTED[file]!);
  });

  it("never prints the device's network keys or the meter's portal password", async () => {
    const all = JSON.stringify(
      json(await decode(...["aioraven_DeviceInfo.xml", "aioraven_MeterInfo.xml"].map(sample))),
    );
    expect(all).not.toContain("ABCDEF0123456789ABCDEF0123456789");
    expect(all).not.toContain("p@ssw0rd");
  });

  it.each(Object.keys(STREAMS))("%s: reported, and the fragments after it decode", async (file) => {
    const { fragments, rejected: reasons } = STREAMS[file]!;
    const after = [instantaneousDemand(IDS, { time: T, watts: 964 }), currentSummation(IDS, { time: T, importKwh: 7 })];
    const items = await decode(sample(file), ...after);
    expect(json(items).map((j) => j.fragment)).toEqual([
      ...fragments,
      "InstantaneousDemand",
      "CurrentSummationDelivered",
    ]);
    expect(json(items).at(-2)).toMatchObject({ values: { power_net_w: 964 } });
    const got = rejected(items);
    expect(got).toHaveLength(reasons.length);
    for (const [i, re] of reasons.entries()) expect(got[i]).toMatch(re);
  });

  it("all samples interleaved in one stream, cut anywhere: each well-formed one decodes as it does alone", async () => {
    const alone = new Map<string, string[]>();
    for (const f of files)
      alone.set(
        f,
        json(await decode(sample(f))).map((j) => JSON.stringify(j)),
      );
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(files, { minLength: files.length, maxLength: files.length }),
        fc.integer({ min: 1, max: 97 }),
        async (order, chunk) => {
          const stream = Buffer.concat(order.flatMap((f) => [sample(f), Buffer.from("\r\n")]));
          const chunks: Buffer[] = [];
          for (let i = 0; i < stream.length; i += chunk) chunks.push(stream.subarray(i, i + chunk));
          const items = await decode(...chunks);
          // Every fragment comes out exactly as it did alone, in order, whatever broken sample precedes it (even the
          // partial DeviceInfo, which has no end of its own); broken samples are reported, at most once each (the
          // partial `<DeviceInfo>` right before the stray `</DeviceInfo>` makes one empty element, one report).
          expect(json(items).map((j) => JSON.stringify(j))).toEqual(order.flatMap((f) => alone.get(f)!));
          const broken = Object.values(STREAMS).reduce((n, s) => n + s.rejected.length, 0);
          expect(rejected(items).length).toBeGreaterThanOrEqual(broken - 1);
          expect(rejected(items).length).toBeLessThanOrEqual(broken);
        },
      ),
      { numRuns: 60 },
    );
  });
});
