/**
 * Writes the demo's bundled captures (fixtures/demo/*.txt): two hours of a Dutch DSMR 5 meter with gas
 * and of a Belgian Fluvius meter with gas, water and capacity-tariff peaks, one telegram per 30 s.
 * Each starts mid-telegram (as a reader that joins a running stream does) and has one telegram with
 * a flipped byte, so the demo shows a rejection being counted.
 *   npx tsx scripts/make-demo-captures.ts
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dsmr5Telegram, fluviusTelegram, simulate } from "../src/sources/dsmr/build.js";

// From 09:58 so that the two full hours after it show in the hourly views (each hour needs the one before).
const start = Date.UTC(2026, 10, 20, 9, 58, 0);
const count = 245;
mkdirSync(new URL("../fixtures/demo/", import.meta.url), { recursive: true });

for (const [file, make, belgian] of [
  ["nl-dsmr5.txt", dsmr5Telegram, false],
  ["be-fluvius.txt", fluviusTelegram, true],
] as const) {
  // The Belgian house runs seven minutes out of step with the Dutch one, so the two meters differ.
  const telegrams = simulate(start + (belgian ? 420_000 : 0), count, 30, belgian).map((s) => make(s));
  const corrupt = Buffer.from(telegrams[100]!);
  corrupt[200] = corrupt[200] === 0x31 ? 0x32 : 0x31;
  telegrams[100] = corrupt;
  const joinedMidway = telegrams[0]!.subarray(telegrams[0]!.length - 120);
  writeFileSync(
    new URL(`../fixtures/demo/${file}`, import.meta.url),
    Buffer.concat([joinedMidway, ...telegrams.slice(1)]),
  );
  console.log(`fixtures/demo/${file}: ${count - 1} telegrams`);
}
