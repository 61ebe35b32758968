import type { DecodeItem, DecodeOptions } from "../index.js";
import { SMT_TIMEZONE, type SmtInterval, streamSmtCsv } from "./csv.js";

const iso = (ms: number): string => new Date(ms).toISOString();

/** The `decode --format smt-csv` line of one interval. */
export function intervalJson(i: SmtInterval): Record<string, unknown> {
  return {
    esiid: i.esiid,
    day: i.day,
    start: iso(i.start),
    end: iso(i.end),
    direction: i.direction,
    energy_kwh: i.energyKwh,
    quality: i.quality,
    revision: i.revision ?? null,
  };
}

/** Smart Meter Texas CSV (portal download or email attachment): one line per interval, rejected rows with file:line. */
export async function* smtCsvDecoder(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncIterable<DecodeItem> {
  const stream = streamSmtCsv(input, { file: opts.source, meterId: "decode", timezone: opts.timezone ?? SMT_TIMEZONE });
  for await (const item of stream) {
    if ("interval" in item) yield { ok: true, json: intervalJson(item.interval) };
    else if ("error" in item)
      yield { ok: false, reason: `${item.error.file}:${item.error.line}: ${item.error.reason}` };
    // A day with fewer intervals than it has quarter hours is a partial file, not a rejected row: not reported here.
  }
}
