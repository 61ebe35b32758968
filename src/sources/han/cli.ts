import { keyBytes } from "../glo-cipher.js";
import { bytesOrHex } from "../hex-input.js";
import type { DecodeItem, DecodeOptions } from "../index.js";
import type { HanTelegram } from "./decode.js";
import { type HanItem, HanStream } from "./stream.js";

/** The `decode --format han` output of one frame: `time` and `values`, then the meter's identity. */
export function hanJson(t: HanTelegram, raw = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    time: t.time !== undefined ? new Date(t.time).toISOString() : null,
    values: t.values,
    meter: { ...t.meter, list: t.layout, encrypted: t.encrypted },
  };
  if (raw && t.unknown.length) out.unknown_objects = t.unknown;
  return out;
}

/** `decode --format han [--key HEX --aad HEX]`: HDLC frames, plain or encrypted, as bytes or as hex text. */
export async function* hanDecoder(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncIterable<DecodeItem> {
  const stream = new HanStream({ timezone: opts.timezone, key: keyBytes(opts.key), aad: keyBytes(opts.aad) });
  function* items(list: HanItem[]): Iterable<DecodeItem> {
    for (const it of list)
      yield it.ok
        ? { ok: true, json: hanJson(it.telegram, opts.raw) }
        : {
            ok: false,
            reason: `${it.noKey ? "encrypted frame" : "frame"} (${it.bytes} bytes): ${it.noKey ? "no key given: add --key (and --aad when you have an authentication key)" : it.reason}`,
          };
  }
  for await (const chunk of bytesOrHex(input)) yield* items(stream.push(chunk));
  yield* items(stream.end());
}
