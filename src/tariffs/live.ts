/**
 * Cost of live meters (DSMR, RAVEn) as they read: each reading's energy since the one before, priced by the meter's
 * tariff, added up into `cost_import_total` (with the daily charge) and `cost_export_total` (what export earned).
 *
 * The totals must not start over when the bridge does: Home Assistant reads a `total` sensor that drops as a
 * negative cost. So they continue from the newest archived reading that has them (the archive stores them like any
 * other quantity), and the energy and days in between are priced when the first reading comes.
 */
import type Database from "better-sqlite3";
import type { Reading } from "../model/types.js";
import { forEachQuarter, type Tariff } from "./tariff.js";

const IMPORT = ["energy_import_kwh", "energy_import_estimated_kwh"] as const;
const EXPORT = ["energy_export_kwh", "energy_export_estimated_kwh"] as const;
type Register = (typeof IMPORT)[number] | (typeof EXPORT)[number];

/** Where a meter's totals stood: the time and registers they were counted up to. */
export interface CostState {
  time: number;
  registers: Partial<Record<Register, number>>;
  importCost: number;
  exportCost: number;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
/** Money to a millionth: well below any currency's unit, and free of the binary noise of long sums. */
const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

/** The quarter hour under way: its energy is priced at the quarter's price as it stands, until the quarter ends. */
interface OpenQuarter {
  start: number;
  importKwh: number;
  exportKwh: number;
}

export class MeterCost {
  private state?: CostState;
  private importRegister?: Register;
  private exportRegister?: Register;
  /** The cost of the quarter hours that have ended (at their settled prices) and the daily charge. */
  private closed = { import: 0, export: 0 };
  private open?: OpenQuarter;

  constructor(
    readonly tariff: Tariff,
    restored?: CostState,
  ) {
    this.state = restored && { ...restored, registers: { ...restored.registers } };
    if (restored) this.closed = { import: restored.importCost, export: restored.exportCost };
  }

  /** The cost values for a reading that carries an energy register; none for one that does not. */
  add(r: Reading): Record<string, number | string> {
    const v = r.values;
    // Sticks to the first register seen, as the derived quarter-hours do: mixing two would price their difference.
    this.importRegister ??= IMPORT.find((n) => num(v[n]) !== undefined);
    this.exportRegister ??= EXPORT.find((n) => num(v[n]) !== undefined);
    const imp = this.importRegister && num(v[this.importRegister]);
    const exp = this.exportRegister && num(v[this.exportRegister]);
    if (imp === undefined && exp === undefined) return {};

    const s = this.state;
    if (!s) this.state = { time: r.time, registers: {}, importCost: 0, exportCost: 0 };
    else if (r.time >= s.time) {
      this.spread(this.delta(this.importRegister, imp), this.delta(this.exportRegister, exp), s.time, r.time);
      this.closed.import += this.tariff.fixed(s.time, r.time);
    }
    // A reading older than the last one (a meter clock set back) moves the baseline without pricing anything.
    const st = this.state as CostState;
    st.time = Math.max(st.time, r.time);
    if (this.importRegister && imp !== undefined) st.registers[this.importRegister] = imp;
    if (this.exportRegister && exp !== undefined) st.registers[this.exportRegister] = exp;
    const o = this.open;
    st.importCost = this.closed.import + (o ? o.importKwh * this.tariff.price("import", o.start) : 0);
    st.exportCost = this.closed.export + (o ? o.exportKwh * this.tariff.price("export", o.start) : 0);

    const out: Record<string, number | string> = {
      cost_import_total: round6(st.importCost),
      currency: this.tariff.currency,
    };
    if (this.tariff.pricesExport) out.cost_export_total = round6(st.exportCost);
    const feed = this.tariff.feed("import");
    const now = feed?.price(r.time);
    if (num(v.price_per_kwh) === undefined) out.price_per_kwh = now?.price ?? this.tariff.price("import", r.time);
    if (feed && now) {
      out.price_source = now.origin;
      const at = feed.lastPriceAt;
      if (at !== undefined) out.price_updated_at = new Date(at).toISOString();
    }
    return out;
  }

  /**
   * Energy used evenly between `from` and `to`, quarter hour by quarter hour: the quarters that have ended at their
   * settled prices, the last one kept open (its price may still change while it is under way).
   */
  private spread(dImp: number, dExp: number, from: number, to: number): void {
    if (dImp === 0 && dExp === 0) return;
    forEachQuarter(from, to, (start, share) => this.put(start, dImp * share, dExp * share));
  }

  /** Adds energy to a quarter: never one before the open quarter, as readings are priced only going forward. */
  private put(start: number, importKwh: number, exportKwh: number): void {
    const o = this.open;
    if (o && o.start === start) {
      o.importKwh += importKwh;
      o.exportKwh += exportKwh;
      return;
    }
    if (o) {
      this.closed.import += o.importKwh * this.tariff.settledPrice("import", o.start);
      this.closed.export += o.exportKwh * this.tariff.settledPrice("export", o.start);
    }
    this.open = { start, importKwh, exportKwh };
  }

  /** Energy since the last value of a register; a register that went down counts as 0 from there. */
  private delta(name: Register | undefined, value: number | undefined): number {
    if (!name || value === undefined) return 0;
    const before = this.state?.registers[name];
    if (before === undefined) return 0;
    const d = value - before;
    if (d >= 0) return d;
    // The bridge's own estimate starts at 0 with each start of the bridge: what it shows now was all used since.
    return name.endsWith("_estimated_kwh") ? value : 0;
  }
}

/**
 * For the bus: readings of meters with a tariff get their cost values (a new object; the source's is left alone).
 * A value the reading already has is kept, except `currency`: the cost sensors are in the tariff's.
 */
export function createCoster(
  tariffs: ReadonlyMap<string, Tariff>,
  restored: ReadonlyMap<string, CostState> = new Map(),
): (r: Reading) => Reading {
  const meters = new Map<string, MeterCost>();
  return (r) => {
    const tariff = tariffs.get(r.meterId);
    if (!tariff) return r;
    let m = meters.get(r.meterId);
    if (!m) {
      m = new MeterCost(tariff, restored.get(r.meterId));
      meters.set(r.meterId, m);
    }
    const extra = m.add(r);
    if (Object.keys(extra).length === 0) return r;
    return { ...r, values: { ...r.values, ...extra } };
  };
}

/** The newest archived cost totals of each meter, with the registers they were counted to. */
export function restoreCostStates(db: Database.Database, meterIds: readonly string[]): Map<string, CostState> {
  const out = new Map<string, CostState>();
  const stmt = db.prepare<[string]>(
    `SELECT time, energy_import_kwh, energy_import_estimated_kwh, energy_export_kwh, energy_export_estimated_kwh,
            cost_import_total, cost_export_total
       FROM readings WHERE meter_id = ? AND cost_import_total IS NOT NULL ORDER BY time DESC LIMIT 1`,
  );
  for (const id of meterIds) {
    const row = stmt.get(id) as Record<string, number | string | null> | undefined;
    if (!row) continue;
    const registers: CostState["registers"] = {};
    for (const n of [...IMPORT, ...EXPORT]) {
      const x = num(row[n]);
      if (x !== undefined) registers[n] = x;
    }
    out.set(id, {
      time: Date.parse(String(row.time)),
      registers,
      importCost: num(row.cost_import_total) ?? 0,
      exportCost: num(row.cost_export_total) ?? 0,
    });
  }
  return out;
}
