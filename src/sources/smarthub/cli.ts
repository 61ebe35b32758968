import type { DecodeItem, DecodeOptions } from "../index.js";
import { decodePoll, SMARTHUB_TIMEZONE, type SmarthubInterval } from "./decode.js";

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
 * per interval, in the co-op's zone (--timezone, America/New_York by default); what cannot be used on stderr.
 */
export async function* smarthubJsonDecoder(
  input: AsyncIterable<Buffer>,
  opts: DecodeOptions,
): AsyncIterable<DecodeItem> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(c);
  const text = Buffer.concat(chunks)
    .toString("utf8")
    .replace(/^\uFEFF/, "");
  if (text.trim() === "") return;
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch (err) {
    yield {
      ok: false,
      reason: `${opts.source}: not JSON${/^\s*</.test(text) ? " (an HTML page: save the poll's response, not the page)" : ""}: ${(err as Error).message}`,
    };
    return;
  }
  const decoded = decodePoll(answer, { meterId: "decode", timezone: opts.timezone ?? SMARTHUB_TIMEZONE });
  for (const i of decoded.intervals) yield { ok: true, json: intervalJson(i) };
  for (const reason of decoded.rejected) yield { ok: false, reason: `${opts.source}: ${reason}` };
}
