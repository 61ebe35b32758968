import type { DecodeItem, DecodeOptions } from "../index.js";
import { decodeTelegram, type Telegram } from "./decode.js";
import { type FrameEvent, TelegramFramer } from "./framer.js";

const isoOrNull = (ms: number | null | undefined): string | null | undefined =>
  ms === undefined ? undefined : ms === null ? null : new Date(ms).toISOString();

/** The `decode --format dsmr` output of one telegram: `time` and `values`, then what else it carried. */
export function telegramJson(t: Telegram): Record<string, unknown> {
  const out: Record<string, unknown> = {
    time: t.time !== undefined ? new Date(t.time).toISOString() : null,
    values: t.values,
    meter: { manufacturer: t.manufacturer, model: t.model, serial: t.equipmentId, version: t.version, crc: t.crc },
  };
  if (t.mbus.length) out.mbus = t.mbus.map((d) => ({ ...d, at: isoOrNull(d.at) }));
  if (t.powerFailureLog)
    out.power_failure_log = t.powerFailureLog.map((f) => ({ end: isoOrNull(f.end), duration_s: f.durationS }));
  if (t.monthPeaks)
    out.month_peaks = t.monthPeaks.map((p) => ({ month: isoOrNull(p.month), at: isoOrNull(p.at), w: p.w }));
  if (t.raw) out.raw = t.raw;
  return out;
}

export async function* dsmrDecoder(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncIterable<DecodeItem> {
  const framer = new TelegramFramer();
  function* items(events: FrameEvent[]): Iterable<DecodeItem> {
    for (const ev of events) {
      if ("frame" in ev) {
        const r = decodeTelegram(ev.frame, { timezone: opts.timezone, raw: opts.raw });
        yield r.ok
          ? { ok: true, json: telegramJson(r.telegram) }
          : { ok: false, reason: `telegram (${ev.frame.length} bytes): ${r.reason}` };
      } else yield { ok: false, reason: `frame (${ev.bytes} bytes): ${ev.rejected}` };
    }
  }
  for await (const chunk of input) {
    yield* items(framer.push(chunk));
  }
  yield* items(framer.end());
}
