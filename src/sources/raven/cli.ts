import type { DecodeItem, DecodeOptions } from "../index.js";
import { type Decoded, decodeFragment } from "./decode.js";
import { type FragmentEvent, FragmentReader } from "./fragments.js";

/** The `decode --format raven` output of one fragment: its name, time and catalogue values, then the rest. */
export function fragmentJson(d: Decoded): Record<string, unknown> {
  return {
    fragment: d.name,
    time: d.time === undefined ? null : new Date(d.time).toISOString(),
    ...(d.deviceMac ? { device_mac: d.deviceMac } : {}),
    ...(d.meterMac ? { meter_mac: d.meterMac } : {}),
    values: d.values,
    ...d.detail,
  };
}

export async function* ravenDecoder(input: AsyncIterable<Buffer>, _opts: DecodeOptions): AsyncIterable<DecodeItem> {
  const reader = new FragmentReader();
  const unknown = new Set<string>();
  function* items(events: FragmentEvent[]): Iterable<DecodeItem> {
    for (const ev of events) {
      if (!("fragment" in ev)) {
        yield { ok: false, reason: ev.rejected };
        continue;
      }
      const r = decodeFragment(ev.fragment);
      if (r.ok) yield { ok: true, json: fragmentJson(r.decoded) };
      else if (!r.unknown)
        yield { ok: false, reason: `<${ev.fragment.name}> (${ev.fragment.bytes} bytes): ${r.reason}` };
      else if (!unknown.has(ev.fragment.name)) {
        // Once per name: firmware that pushes a fragment we do not know pushes it often.
        unknown.add(ev.fragment.name);
        yield { ok: false, reason: `${r.reason} skipped (not reported again)` };
      }
    }
  }
  for await (const chunk of input) yield* items(reader.push(chunk));
  yield* items(reader.end());
}
