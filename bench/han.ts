/**
 * HAN port frames (DLMS/COSEM over HDLC): the whole reader (HDLC framing with both CRC checks, segments joined,
 * A-XDR, the COSEM list to quantities) on Aidon three-phase lists of our own making, in one frame and segmented,
 * in clear and encrypted (AES-128-GCM with the tag and frame counter checked).
 */
import { aidonFrames, simulateHan } from "../src/sources/han/build.js";
import { HanStream } from "../src/sources/han/stream.js";

function rate(frames: Buffer[], make: () => HanStream): number {
  const run = (ms: number): number => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      // A new reader per pass: the frame counters must rise, and each pass replays the same frames.
      const s = make();
      for (const f of frames) for (const it of s.push(f)) if (it.ok) n++;
    }
    return n / ((performance.now() - t0) / 1000);
  };
  run(300);
  return [run(1000), run(1000), run(1000)].sort((a, b) => a - b)[1]!;
}

export function benchHan(): Record<string, string> {
  const key = Buffer.from("0123456789abcdef0123456789abcdef", "hex");
  const aad = Buffer.from("ffeeddccbbaa99887766554433221100", "hex");
  const states = simulateHan(Date.UTC(2026, 10, 21, 11), 500, 2);
  const plain = states.map((s) => aidonFrames(s));
  const segmented = states.map((s) => aidonFrames(s, { maxInfo: 128 }));
  const encrypted = states.map((s, i) => aidonFrames(s, { glo: { key, aad, counter: i + 1 } }));
  const fmt = (n: number): string => Math.round(n).toLocaleString("en");
  const bytes = (f: Buffer[]): number => Math.round(f.reduce((a, b) => a + b.length, 0) / f.length);
  return {
    [`decode HAN Aidon list (${bytes(plain)} B/frame)`]: `${fmt(rate(plain, () => new HanStream()))} frames/s`,
    [`decode HAN segmented (${bytes(segmented)} B in ${Math.ceil(bytes(plain) / 128)} frames)`]: `${fmt(rate(segmented, () => new HanStream()))} messages/s`,
    [`decode HAN encrypted (${bytes(encrypted)} B/frame)`]: `${fmt(rate(encrypted, () => new HanStream({ key, aad })))} frames/s`,
  };
}

// Alone: npx tsx bench/han.ts
if (import.meta.url === `file://${process.argv[1]}`)
  for (const [k, v] of Object.entries(benchHan())) console.log(`${k.padEnd(52)} ${v}`);
