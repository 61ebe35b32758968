import type { Bus } from "../bus.js";
import type { Clock } from "../util/clock.js";
import type { Logger } from "../util/log.js";

/**
 * The import status of an interval meter (SMT, SmartHub), published as the `import_status` and
 * `import_checked_at` diagnostics. An error is logged once until it changes or goes away, and its end is
 * logged once, so a mailbox or portal that stays down does not fill the log on every check.
 */
export class ImportStatus {
  private lastError?: string;

  constructor(
    private readonly meterId: string,
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** "reading", "fetching": what works again when an error ends. */
    private readonly activity: string,
  ) {}

  /** The outcome of one check: an error, or how many items were rejected and what they are called. */
  report(error: string | undefined, rejected = 0, items = "item(s)"): void {
    if (error) {
      if (error !== this.lastError) this.log.error(error);
      this.lastError = error;
      this.publish(`error: ${error}`);
      return;
    }
    if (this.lastError) this.log.info(`${this.activity} works again`);
    this.lastError = undefined;
    this.publish(rejected > 0 ? `ok, ${rejected} ${items} rejected` : "ok");
  }

  publish(text: string): void {
    const now = this.clock.now();
    this.bus.emit("reading", {
      meterId: this.meterId,
      time: now,
      values: {
        // HA keeps at most 255 characters of a state.
        import_status: text.length > 255 ? `${text.slice(0, 254)}…` : text,
        import_checked_at: new Date(now).toISOString(),
      },
    });
  }
}
