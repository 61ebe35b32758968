/**
 * The bridge's archive writer (src/outputs/archive: the same class, worker thread and batching the bridge uses) in a
 * process of its own, fed RATE readings a second with times to the millisecond, as a busy meter would:
 *
 *   node --import tsx test/helpers/archive-writer.ts FILE RATE
 *
 * Prints `n time` for each reading handed to the archive; SIGTERM stops it the way the bridge stops (archive
 * flushed), then it exits 0.
 */
import { Archive } from "../../src/outputs/archive/index.js";

const [path, rateArg] = process.argv.slice(2);
if (!path || !rateArg) throw new Error("usage: archive-writer.ts FILE RATE");
const periodMs = 1000 / Number(rateArg);
const archive = new Archive({ enabled: true, path, interval: 0 });
await archive.start();
archive.upsertMeter({ id: "home", name: "Home", type: "dsmr" });

let n = 0;
let last = 0;
const started = Date.now();
const timer = setInterval(() => {
  const due = Math.floor((Date.now() - started) / periodMs);
  let out = "";
  for (; n < due; n++) {
    // One reading per millisecond at most: the archive keeps one row per meter and time.
    const time = Math.max(Date.now(), last + 1);
    last = time;
    archive.add({ meterId: "home", time, values: { power_import_w: n, energy_import_kwh: 1000 + n / 1000 } });
    out += `${n} ${time}\n`;
  }
  if (out) process.stdout.write(out);
}, 5);

process.once("SIGTERM", () => {
  clearInterval(timer);
  archive.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
