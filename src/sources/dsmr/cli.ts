import { keyBytes } from "../glo-cipher.js";
import { bytesOrHex } from "../hex-input.js";
import type { DecodeItem, DecodeOptions } from "../index.js";
import type { Telegram } from "./decode.js";
import { DsmrStream, type StreamItem } from "./stream.js";

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

/** `decode --format dsmr [--key HEX --aad HEX]`: plain or encrypted telegrams, as bytes or as hex text. */
export async function* dsmrDecoder(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncIterable<DecodeItem> {
  const stream = new DsmrStream({
    timezone: opts.timezone,
    raw: opts.raw,
    key: keyBytes(opts.key),
    aad: keyBytes(opts.aad),
  });
  function* items(list: StreamItem[]): Iterable<DecodeItem> {
    for (const it of list) {
      yield it.ok
        ? { ok: true, json: telegramJson(it.telegram) }
        : {
            ok: false,
            reason: `${it.noKey ? "encrypted telegram" : "telegram"} (${it.bytes} bytes): ${it.noKey ? "no key given: add --key (and --aad when you have an authentication key)" : it.reason}`,
          };
    }
  }
  for await (const chunk of bytesOrHex(input)) yield* items(stream.push(chunk));
  yield* items(stream.end());
}
