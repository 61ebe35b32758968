/** A live snapshot from a meter (DSMR, RAVEn). Values use the catalogue's names (src/model/quantities.ts). */
export interface Reading {
  meterId: string;
  /** UTC, milliseconds since the epoch. The meter's own clock where it sends one, else the time of receipt. */
  time: number;
  values: Record<string, number | string>;
}

/** A metered period that may arrive late and be revised (SMT, SmartHub). */
export interface Interval {
  meterId: string;
  /** UTC ms, inclusive. */
  start: number;
  /** UTC ms, exclusive. */
  end: number;
  energyKwh: number | null;
  direction: "import" | "export";
  quality: "actual" | "estimated" | "missing";
  revision?: string;
  cost?: number;
}

/** What a source tells the app about itself, besides readings. */
export interface MeterInfo {
  meterId: string;
  manufacturer?: string;
  model?: string;
  serialNumber?: string;
  swVersion?: string;
}

export interface SourceStatus {
  meterId: string;
  /** true while the device is connected and frames arrive. */
  online: boolean;
  framesReceived: number;
  framesRejected: number;
  lastError?: string;
}
