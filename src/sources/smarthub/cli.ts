import type { DecodeItem, DecodeOptions } from "../index.js";
import { decodePollParts, SMARTHUB_TIMEZONE, type SmarthubInterval } from "./decode.js";
import { readPoll } from "./read.js";

const iso = (ms: number): string => new Date(ms).toISOString();

/** The `decode --format smarthub-json` line of one interval. */
export function intervalJson(i: SmarthubInterval): Record<string, unknown> {
  return {
    series: i.series,
    start: iso(i.start),
    end: iso(i.end),
    direction: i.direction,
    energy_kwh: i.energyKwh,
    quality: i.quality,
    cost: i.cost ?? null,
  };
}

/**
 * A saved SmartHub poll answer (the JSON of utility-usage/poll, as the browser's developer tools save it): one line
 * per interval, in the co-op's zone (--timezone, America/New_York by default); what cannot be used on stderr. The
 * file is read as it comes (src/sources/smarthub/read.ts): years of quarter hours fit in a small memory.
 */
export async function* smarthubJsonDecoder(
  input: AsyncIterable<Buffer>,
  opts: DecodeOptions,
): AsyncIterable<DecodeItem> {
  const read = await readPoll(input);
  if (read.kind === "empty") return;
  if (read.kind === "error") {
    yield {
      ok: false,
      reason: `${opts.source}: not JSON${read.html ? " (an HTML page: save the poll's response, not the page)" : ""}: ${read.message}`,
    };
    return;
  }
  const decoded = decodePollParts(read.parts, { meterId: "decode", timezone: opts.timezone ?? SMARTHUB_TIMEZONE });
  for (const i of decoded.intervals()) yield { ok: true, json: intervalJson(i) };
  for (const reason of decoded.rejected) yield { ok: false, reason: `${opts.source}: ${reason}` };
}
