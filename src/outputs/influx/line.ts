/**
 * InfluxDB line protocol, as InfluxDB 1.x/2.x and VictoriaMetrics read it, timestamps in milliseconds
 * (`precision=ms` on the write URL):
 *
 *   meter2mqtt,meter=home energy_import_kwh=1234.567,power_import_w=350 1718000000000
 *   meter2mqtt_interval,meter=texas,direction=import energy_kwh=0.145,estimated=0 1718000000000
 *
 * One point per reading with every numeric catalogue quantity as a field, the meter id as the tag; one point per
 * interval at its start. Fields are always floats (no `i` suffix): InfluxDB refuses a field whose type changes, and
 * a register that reads 1234 once and 1234.5 later must not be the end of a series. Quality is a field, not a tag:
 * an estimate replaced by an actual reading must overwrite the same point, not start a second series beside it.
 * VictoriaMetrics names the series `<measurement>_<field>` (meter2mqtt_energy_import_kwh{meter="home"}).
 */
import { quantity } from "../../model/quantities.js";
import type { Interval, Reading } from "../../model/types.js";

const escapeMeasurement = (s: string): string => s.replace(/[\\, ]/g, (c) => `\\${c}`);
const escapeKey = (s: string): string => s.replace(/[\\,= ]/g, (c) => `\\${c}`);

export function formatLine(
  measurement: string,
  tags: Readonly<Record<string, string>>,
  fields: Readonly<Record<string, number>>,
  timeMs: number,
): string | undefined {
  let fieldText = "";
  for (const [k, v] of Object.entries(fields)) {
    if (!Number.isFinite(v)) continue;
    fieldText += `${fieldText ? "," : ""}${escapeKey(k)}=${v}`;
  }
  // A point without fields is a syntax error that would fail the whole batch.
  if (!fieldText || !Number.isFinite(timeMs)) return undefined;
  let tagText = "";
  // Sorted tags are what InfluxDB recommends for write speed.
  for (const k of Object.keys(tags).sort()) {
    const v = tags[k] as string;
    if (v !== "") tagText += `,${escapeKey(k)}=${escapeKey(v)}`;
  }
  return `${escapeMeasurement(measurement)}${tagText} ${fieldText} ${Math.round(timeMs)}`;
}

/** The numeric catalogue values of a reading. */
export function readingFields(values: Readonly<Record<string, unknown>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(values))
    if (typeof v === "number" && Number.isFinite(v) && quantity(name)?.type === "number") out[name] = v;
  return out;
}

export function readingLine(r: Reading, measurement: string): string | undefined {
  return formatLine(measurement, { meter: r.meterId }, readingFields(r.values), r.time);
}

/** An interval as a point at its start; intervals without a reading give none. */
export function intervalLine(i: Interval, measurement: string): string | undefined {
  if (i.energyKwh === null || !Number.isFinite(i.energyKwh)) return undefined;
  const fields: Record<string, number> = { energy_kwh: i.energyKwh, estimated: i.quality === "estimated" ? 1 : 0 };
  if (typeof i.cost === "number" && Number.isFinite(i.cost)) fields.cost = i.cost;
  return formatLine(`${measurement}_interval`, { meter: i.meterId, direction: i.direction }, fields, i.start);
}
