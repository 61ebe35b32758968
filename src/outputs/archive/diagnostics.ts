import type { Bus } from "../../bus.js";
import { type Clock, systemClock, type Timer } from "../../util/clock.js";
import type { Logger } from "../../util/log.js";
import type { Archive } from "./index.js";

/** How often the archive's size and rows are published. */
export const DIAGNOSTICS_EVERY_MS = 15 * 60_000;
/** The first time, shortly after start (the archive has just been opened and migrated). */
const FIRST_AFTER_MS = 10_000;

/**
 * The archive's diagnostic sensors on each meter's device: `archive_size_mb` (the file with its write-ahead log, the
 * same on every meter) and `archive_rows` (the meter's raw readings and interval revisions), published like the other
 * diagnostics, as values of the meter's state. The worker reads them from kept counts, so this costs nothing.
 */
export class ArchiveDiagnostics {
  private timer?: Timer;
  private stopped = false;
  private readonly clock: Clock;

  constructor(
    private readonly archive: Pick<Archive, "call">,
    private readonly bus: Bus,
    private readonly meterIds: readonly string[],
    private readonly log: Logger,
    opts: { clock?: Clock } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    this.schedule(FIRST_AFTER_MS);
  }

  /** Reads the figures and publishes them once. */
  async publish(): Promise<void> {
    const sizes = await this.archive.call("sizes");
    const now = this.clock.now();
    const rows = new Map(sizes.meters.map((m) => [m.id, m.readings + m.intervals]));
    for (const meterId of this.meterIds)
      this.bus.emit("reading", {
        meterId,
        time: now,
        values: { archive_size_mb: Math.round(sizes.bytes / 1e5) / 10, archive_rows: rows.get(meterId) ?? 0 },
      });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) this.clock.clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.timer = this.clock.setTimeout(() => {
      if (this.stopped) return;
      this.publish()
        .catch((err: Error) => {
          if (!this.stopped) this.log.warn(`archive size not published: ${err.message}`);
        })
        .finally(() => {
          if (!this.stopped) this.schedule(DIAGNOSTICS_EVERY_MS);
        });
    }, ms);
  }
}
