/**
 * The line-protocol output: live readings and new or revised intervals from the bus to InfluxDB 1.x, 2.x or
 * VictoriaMetrics (see line.ts for the points, writer.ts for batching, retries and the buffer). A bridge per site
 * can write to one shared server: points are told apart by the `meter` tag.
 */
import type { Interval, Reading } from "../../model/types.js";
import type { Clock } from "../../util/clock.js";
import { createLogger, type Logger } from "../../util/log.js";
import { intervalLine, readingLine } from "./line.js";
import type { InfluxConfig } from "./schema.js";
import { describeUrl, LineWriter, type Post } from "./writer.js";

export { formatLine, intervalLine, readingFields, readingLine } from "./line.js";
export { type InfluxConfig, InfluxSchema } from "./schema.js";
export { authHeader, describeUrl, LineWriter, WriteError, writeUrl } from "./writer.js";

export class InfluxOutput {
  readonly writer: LineWriter;
  private readonly log: Logger;

  constructor(
    private readonly cfg: InfluxConfig,
    opts: { clock?: Clock; log?: Logger; post?: Post } = {},
  ) {
    this.log = opts.log ?? createLogger("influx");
    this.writer = new LineWriter(cfg, { ...opts, log: this.log });
  }

  start(): void {
    const target =
      this.cfg.version === 2
        ? `InfluxDB 2 bucket ${this.cfg.bucket} (org ${this.cfg.org})`
        : this.cfg.version === 1
          ? `InfluxDB 1 database ${this.cfg.database}`
          : `VictoriaMetrics${this.cfg.database ? ` (db=${this.cfg.database})` : ""}`;
    this.log.info(
      `line protocol to ${target} at ${describeUrl(this.cfg.url)}, measurement ${this.cfg.measurement}, batches of ${this.cfg.batch_size} at least every ${this.cfg.flush_interval} s`,
    );
  }

  onReading(r: Reading): void {
    const line = readingLine(r, this.cfg.measurement);
    if (line) this.writer.add([line]);
  }

  onIntervals(intervals: readonly Interval[]): void {
    const lines: string[] = [];
    for (const i of intervals) {
      const line = intervalLine(i, this.cfg.measurement);
      if (line) lines.push(line);
    }
    this.writer.add(lines);
  }

  stop(graceMs?: number): Promise<void> {
    return this.writer.stop(graceMs);
  }
}
