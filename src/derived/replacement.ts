import type { MeterInfo, Reading } from "../model/types.js";
import type { Logger } from "../util/log.js";

/**
 * A replaced meter. When the grid operator swaps the meter, the new one's registers start near 0; a `total` sensor
 * that falls from 30,000 kWh to 0.2 kWh would be booked by Home Assistant as −29,999.8 kWh. So the bridge notices
 * the replacement and from then on sends `meter_replaced_at` with every reading: the energy sensors' discovery reads
 * it as HA's `last_reset`, and HA's recorder then closes the old meter's cycle and books the new register from 0 —
 * neither a negative nor a spike.
 *
 * A replacement is noticed when the meter's identity changes (another serial number) while a register falls, or,
 * with no identity to go by, when a register falls and stays down for `confirmReadings` readings over at least
 * `confirmMs` (a single glitched reading is not a new meter). Until then the fallen registers are held back.
 */
export const REPLACED_AT = "meter_replaced_at";

/** The electricity registers a replacement restarts (gas, water and heat meters are replaced on their own). */
export const RESET_REGISTERS: readonly string[] = [
  "energy_import_kwh",
  "energy_export_kwh",
  ...[1, 2, 3, 4].flatMap((t) => [`energy_import_tariff${t}_kwh`, `energy_export_tariff${t}_kwh`]),
  "reactive_energy_import_kvarh",
  "reactive_energy_export_kvarh",
];

export interface Replacement {
  meterId: string;
  /** When the new meter's first reading was taken (UTC ms). */
  at: number;
  oldSerial?: string;
  newSerial?: string;
  /** The old meter's last registers and the new one's first. */
  before: Record<string, number>;
  after: Record<string, number>;
  /** "identity": a new serial number; "registers": the registers fell and stayed down. */
  how: "identity" | "registers";
}

export interface MeterMemory {
  /** The last registers the archive has for the meter. */
  registers?: Record<string, number>;
  serial?: string;
  /** The latest replacement (UTC ms), which stays HA's last_reset. */
  replacedAt?: number;
}

interface State extends MeterMemory {
  registers: Record<string, number>;
  identityChanged: boolean;
  oldSerial?: string;
  pending: { first: Reading; count: number } | undefined;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** A register fell: by more than 1 kWh and to below 90 % of what it was (rounding and glitches stay far below). */
function fell(before: number, now: number): boolean {
  return now < before - 1 && now < before * 0.9;
}

export class ReplacementTracker {
  private readonly meters = new Map<string, State>();

  constructor(
    private readonly opts: {
      log: Logger;
      onReplacement(r: Replacement): void;
      memory?: ReadonlyMap<string, MeterMemory>;
      confirmReadings?: number;
      confirmMs?: number;
    },
  ) {}

  private state(id: string): State {
    let s = this.meters.get(id);
    if (!s) {
      const m = this.opts.memory?.get(id);
      s = {
        registers: { ...(m?.registers ?? {}) },
        serial: m?.serial,
        replacedAt: m?.replacedAt,
        identityChanged: false,
        pending: undefined,
      };
      this.meters.set(id, s);
    }
    return s;
  }

  /** The source's identity of the meter (sent before its readings). */
  onMeterInfo(info: MeterInfo): void {
    if (!info.serialNumber) return;
    const s = this.state(info.meterId);
    if (s.serial !== undefined && s.serial !== info.serialNumber) {
      s.identityChanged = true;
      s.oldSerial = s.serial;
    }
    s.serial = info.serialNumber;
  }

  /** The bus transform: holds back fallen registers until decided, adds meter_replaced_at after a replacement. */
  transform = (r: Reading): Reading => {
    const s = this.state(r.meterId);
    const v = r.values;
    const dropped = RESET_REGISTERS.filter((k) => {
      const now = num(v[k]);
      const before = s.registers[k];
      return now !== undefined && before !== undefined && fell(before, now);
    });
    let values = v;
    if (dropped.length > 0) {
      if (s.identityChanged) this.replaced(s, r, "identity");
      else {
        s.pending ??= { first: r, count: 0 };
        s.pending.count++;
        const enough =
          s.pending.count >= (this.opts.confirmReadings ?? 5) &&
          r.time - s.pending.first.time >= (this.opts.confirmMs ?? 300_000);
        if (enough) this.replaced(s, s.pending.first, "registers");
        else {
          // Undecided: the registers are left out, so neither HA nor the archive sees a dip that may be a new meter.
          values = { ...v };
          for (const k of RESET_REGISTERS) delete values[k];
        }
      }
    } else if (s.pending) {
      // Back up: it was a glitch, not a new meter.
      s.pending = undefined;
    }
    if (values === v) {
      for (const k of RESET_REGISTERS) {
        const now = num(v[k]);
        if (now !== undefined) s.registers[k] = now;
      }
      s.identityChanged = false;
    }
    if (s.replacedAt !== undefined) values = { ...values, [REPLACED_AT]: new Date(s.replacedAt).toISOString() };
    return values === r.values ? r : { ...r, values };
  };

  private replaced(s: State, first: Reading, how: Replacement["how"]): void {
    const meterId = first.meterId;
    const after: Record<string, number> = {};
    for (const k of RESET_REGISTERS) {
      const x = num(first.values[k]);
      if (x !== undefined) after[k] = x;
    }
    const event: Replacement = {
      meterId,
      at: first.time,
      oldSerial: how === "identity" ? s.oldSerial : s.serial,
      newSerial: s.serial,
      before: { ...s.registers },
      after,
      how,
    };
    s.replacedAt = first.time;
    s.pending = undefined;
    s.registers = {};
    const imp = (x: Record<string, number>) => (x.energy_import_kwh === undefined ? "?" : `${x.energy_import_kwh} kWh`);
    this.opts.log.info(
      `meter ${meterId} was replaced${how === "identity" ? ` (serial ${event.oldSerial ?? "?"} → ${event.newSerial ?? "?"})` : " or its registers were reset"} at ${new Date(first.time).toISOString()}: import register ${imp(event.before)} → ${imp(after)}; Home Assistant counts the new meter from 0`,
    );
    this.opts.onReplacement(event);
  }
}

/** What the archive remembers of each meter: its last registers and serial, and its latest replacement. */
export function memoryFromArchive(db: {
  prepare(sql: string): { all(...args: unknown[]): unknown[] };
}): Map<string, MeterMemory> {
  const out = new Map<string, MeterMemory>();
  const get = (id: string): MeterMemory => {
    let m = out.get(id);
    if (!m) {
      m = {};
      out.set(id, m);
    }
    return m;
  };
  for (const row of db.prepare("SELECT id, serial_number FROM meters").all() as {
    id: string;
    serial_number: string | null;
  }[])
    if (row.serial_number) get(row.id).serial = row.serial_number;
  const cols = RESET_REGISTERS.join(", ");
  for (const row of db.prepare(`SELECT meter_id, ${cols} FROM readings_latest`).all() as Record<string, unknown>[]) {
    const registers: Record<string, number> = {};
    for (const k of RESET_REGISTERS) {
      const x = num(row[k]);
      if (x !== undefined) registers[k] = x;
    }
    get(String(row.meter_id)).registers = registers;
  }
  for (const row of db
    .prepare("SELECT meter_id, max(time) AS time FROM meter_replacements GROUP BY meter_id")
    .all() as {
    meter_id: string;
    time: string;
  }[])
    get(row.meter_id).replacedAt = Date.parse(row.time);
  return out;
}

/** Records a replacement in the archive (rare: one short write of its own). */
export function recordReplacement(
  db: { prepare(sql: string): { run(...args: unknown[]): unknown } },
  r: Replacement,
): void {
  db.prepare(
    "INSERT OR REPLACE INTO meter_replacements (meter_id, time, how, old_serial, new_serial, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
  ).run(
    r.meterId,
    new Date(r.at).toISOString(),
    r.how,
    r.oldSerial ?? null,
    r.newSerial ?? null,
    JSON.stringify(r.before),
    JSON.stringify(r.after),
  );
}
