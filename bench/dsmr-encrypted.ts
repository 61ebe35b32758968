/**
 * Encrypted P1 (Luxembourg Smarty style): frames through the whole reader (framer, AES-128-GCM with the tag and
 * frame counter checked, decoder), compared with the same telegrams in clear through the same reader.
 */
import { dsmr5Telegram, encryptTelegram, simulate } from "../src/sources/dsmr/build.js";
import { DsmrStream } from "../src/sources/dsmr/stream.js";

function rate(frames: Buffer[], make: () => DsmrStream): number {
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

export function benchEncrypted(): Record<string, string> {
  const key = Buffer.from("0123456789abcdef0123456789abcdef", "hex");
  const aad = Buffer.from("ffeeddccbbaa99887766554433221100", "hex");
  const title = Buffer.from("SAG\x01\x02\x03\x04\x05", "latin1");
  const plain = simulate(Date.UTC(2026, 10, 21, 11), 500, 1).map((s) => dsmr5Telegram(s, "Europe/Luxembourg"));
  const frames = plain.map((p, i) => encryptTelegram(p, { key, aad, systemTitle: title, counter: i + 1 }));
  const enc = rate(frames, () => new DsmrStream({ key, aad, timezone: "Europe/Luxembourg" }));
  const clear = rate(plain, () => new DsmrStream({ timezone: "Europe/Luxembourg" }));
  return {
    [`decode encrypted P1 (${frames[0]!.length} B/frame)`]: `${Math.round(enc).toLocaleString("en")} telegrams/s (the same telegrams in clear: ${Math.round(clear).toLocaleString("en")}/s)`,
  };
}
