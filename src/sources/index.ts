import type { Source } from "../app.js";
import type { Bus } from "../bus.js";
import type { MeterConfig } from "../config/schema.js";
import type { IntervalPipeline } from "../intervals/pipeline.js";
import type { Clock } from "../util/clock.js";
import { dsmrDecoder } from "./dsmr/cli.js";
import { DsmrSource } from "./dsmr/index.js";
import { ravenDecoder } from "./raven/cli.js";
import { RavenSource } from "./raven/index.js";
import { smarthubJsonDecoder } from "./smarthub/cli.js";
import { SmarthubSource } from "./smarthub/index.js";
import { smtCsvDecoder } from "./smt/cli.js";
import { SmtSource } from "./smt/index.js";

/**
 * The meter families, registered in one place: how to run a configured meter, and how `decode`
 * reads a capture of its format. A new family adds one case to each.
 */
export function createSource(
  meter: MeterConfig,
  bus: Bus,
  // `intervals`: where sources of late, revisable intervals (SMT, SmartHub) hand them over; absent without an archive.
  opts: { clock: Clock; intervals?: IntervalPipeline },
): Source {
  switch (meter.type) {
    case "dsmr":
      return new DsmrSource(meter, bus, opts);
    case "raven":
      return new RavenSource(meter, bus, opts);
    case "smt":
      return new SmtSource(meter, bus, opts);
    case "smarthub":
      return new SmarthubSource(meter, bus, opts);
  }
}

/** One decoded item (printed as a JSON line on stdout) or one rejected frame/row (a line on stderr). */
export type DecodeItem = { ok: true; json: unknown } | { ok: false; reason: string };

export interface DecodeOptions {
  timezone?: string;
  raw?: boolean;
  /** The file name, for messages that point at a line. */
  source: string;
}

/** Streaming decoders by `--format`: bytes in, items out, in order. */
export type Decoder = (input: AsyncIterable<Buffer>, opts: DecodeOptions) => AsyncIterable<DecodeItem>;

export const DECODERS: Record<string, Decoder> = {
  dsmr: dsmrDecoder,
  raven: ravenDecoder,
  "smt-csv": smtCsvDecoder,
  "smarthub-json": smarthubJsonDecoder,
};
