/**
 * RAVEn / EMU-2 fragment decode rate: the fragment reader and the decoder over a stream of the fragments a
 * device sends in normal operation (demand, summation, price, link status), fed in 64-byte chunks as a USB CDC
 * port delivers them; and the same stream with a run of garbage before every tenth fragment, which the reader
 * must skip and report. Prints nothing; run.ts prints what this returns.
 */
import {
  currentSummation,
  type Ids,
  instantaneousDemand,
  LAYOUTS,
  networkInfo,
  priceCluster,
} from "../src/sources/raven/build.js";
import { decodeFragment } from "../src/sources/raven/decode.js";
import { type FragmentEvent, FragmentReader } from "../src/sources/raven/fragments.js";

const IDS: Ids = { deviceMac: "D8D5B9000000F919", meterMac: "00135003004653A5" };
const CHUNK = 64;

function stream(garbage: boolean): { bytes: Buffer; fragments: number } {
  const t0 = Date.UTC(2026, 10, 21, 0, 0, 0);
  const parts: Buffer[] = [];
  let fragments = 0;
  for (let i = 0; i < 400; i++) {
    const time = t0 + i * 8000;
    if (garbage && i % 10 === 0) parts.push(Buffer.from("\u0000\u00ff0x1cc0c215</TimeStamp>\r\n", "latin1"));
    const kind = i % 8;
    parts.push(
      kind === 3
        ? currentSummation(IDS, { time, importKwh: 35395.554 + i / 1000, exportKwh: 12.5 })
        : kind === 5
          ? priceCluster(IDS, { time, price: 0.1375 })
          : kind === 7
            ? networkInfo(IDS, { linkStrength: 90 + (i % 10) })
            : instantaneousDemand(IDS, { time, watts: 800 + ((i * 37) % 3000) - 1000 }, LAYOUTS.emu2),
    );
    fragments++;
  }
  return { bytes: Buffer.concat(parts), fragments };
}

function rate(bytes: Buffer, expected: number): { perSecond: number; mbPerSecond: number } {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += CHUNK) chunks.push(bytes.subarray(i, i + CHUNK));
  const events: FragmentEvent[] = [];
  const run = (ms: number): number => {
    const reader = new FragmentReader();
    let n = 0;
    let passes = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (const c of chunks) {
        reader.push(c, events);
        for (const ev of events) {
          if (!("fragment" in ev)) continue;
          const r = decodeFragment(ev.fragment);
          if (!r.ok) throw new Error(r.reason);
          n++;
        }
        events.length = 0;
      }
      passes++;
    }
    if (n !== passes * expected)
      throw new Error(`decoded ${n} fragments in ${passes} passes, expected ${expected} each`);
    return n / ((performance.now() - t0) / 1000);
  };
  run(300); // warm-up: let the JIT settle
  const rates = [run(1000), run(1000), run(1000)].sort((a, b) => a - b);
  const perSecond = rates[1]!;
  return { perSecond, mbPerSecond: (perSecond * bytes.length) / expected / 1e6 };
}

export async function benchRaven(): Promise<Record<string, string | number>> {
  const clean = stream(false);
  const dirty = stream(true);
  const a = rate(clean.bytes, clean.fragments);
  const b = rate(dirty.bytes, dirty.fragments);
  const fmt = (r: { perSecond: number; mbPerSecond: number }): string =>
    `${Math.round(r.perSecond).toLocaleString("en")} fragments/s (${r.mbPerSecond.toFixed(1)} MB/s, median of 3)`;
  return {
    [`decode RAVEn/EMU-2 fragments (${Math.round(clean.bytes.length / clean.fragments)} B each, 64 B chunks)`]: fmt(a),
    "decode RAVEn/EMU-2 fragments, garbage before every 10th": fmt(b),
  };
}
