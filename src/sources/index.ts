import type { Source } from "../app.js";
import type { Bus } from "../bus.js";
import type { MeterConfig } from "../config/schema.js";
import type { IntervalPipeline } from "../intervals/pipeline.js";
import type { Clock } from "../util/clock.js";
import type { Logger } from "../util/log.js";

/**
 * The meter families, registered in one place: how to run a configured meter, and how `decode`
 * reads a capture of its format. A new family adds one case to each. Families load only when a meter (or a
 * decode) needs them: the IMAP, HTTP and XML code of the others is of no use to a P1-only bridge on a Pi.
 */
export async function createSource(
  meter: MeterConfig,
  bus: Bus,
  // `intervals`: where sources of late, revisable intervals (SMT, SmartHub) hand them over; absent without an archive.
  // `log`: where the source logs (the bridge's own logger when absent; `check` keeps what it says).
  opts: { clock: Clock; intervals?: IntervalPipeline; log?: Logger },
): Promise<Source> {
  switch (meter.type) {
    case "dsmr":
      return new (await import("./dsmr/index.js")).DsmrSource(meter, bus, opts);
    case "han":
      return new (await import("./han/index.js")).HanSource(meter, bus, opts);
    case "raven":
      return new (await import("./raven/index.js")).RavenSource(meter, bus, opts);
    case "smt":
      return new (await import("./smt/index.js")).SmtSource(meter, bus, opts);
    case "smarthub":
      return new (await import("./smarthub/index.js")).SmarthubSource(meter, bus, opts);
  }
}

/** One decoded item (printed as a JSON line on stdout) or one rejected frame/row (a line on stderr). */
export type DecodeItem = { ok: true; json: unknown } | { ok: false; reason: string };

export interface DecodeOptions {
  timezone?: string;
  raw?: boolean;
  /** The file name, for messages that point at a line. */
  source: string;
  /** AES-128-GCM key and authentication key (32 hex digits each) of encrypted P1 and HAN frames. */
  key?: string;
  aad?: string;
}

/** Streaming decoders by `--format`: bytes in, items out, in order. */
export type Decoder = (input: AsyncIterable<Buffer>, opts: DecodeOptions) => AsyncIterable<DecodeItem>;

export const DECODERS: Record<string, () => Promise<Decoder>> = {
  dsmr: async () => (await import("./dsmr/cli.js")).dsmrDecoder,
  han: async () => (await import("./han/cli.js")).hanDecoder,
  raven: async () => (await import("./raven/cli.js")).ravenDecoder,
  "smt-csv": async () => (await import("./smt/cli.js")).smtCsvDecoder,
  "smarthub-json": async () => (await import("./smarthub/cli.js")).smarthubJsonDecoder,
};
