import { createReadStream } from "node:fs";
import { parseArgs } from "node:util";
import { App } from "./app.js";
import { ConfigError, loadConfig } from "./config/load.js";
import { runDemo } from "./demo.js";
import { decodeTelegram } from "./sources/dsmr/decode.js";
import { TelegramFramer } from "./sources/dsmr/framer.js";
import { createLogger, redact } from "./util/log.js";
import { VERSION } from "./version.js";

const USAGE = `meter2mqtt ${VERSION}: smart meters to Home Assistant over MQTT, with a SQLite archive

Usage:
  meter2mqtt run [--config FILE]        the bridge (without --config: /data/options.json, as the add-on)
  meter2mqtt demo [--interval MS]       replays bundled captures through the whole pipeline with an
                                        embedded MQTT broker and an archive under ./data
  meter2mqtt decode --format dsmr [--timezone ZONE] [--raw] [FILE|-]
                                        one JSON object per telegram on stdout; each rejected
                                        frame as one line on stderr with the reason
  meter2mqtt --version | --help
`;

const log = createLogger("cli");

async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" } }, strict: true });
  const { config, source } = loadConfig(values.config);
  log.info(`configuration from ${source}`);
  const app = new App(config);
  let stopping = false;
  const done = new Promise<number>((resolve) => {
    const onSignal = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig} received`);
      app.stop().then(
        () => resolve(0),
        (err: Error) => {
          log.error(`error while stopping: ${err.message}`);
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  await app.start();
  return done;
}

async function decode(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      format: { type: "string", short: "f" },
      timezone: { type: "string" },
      raw: { type: "boolean", default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.format !== "dsmr") {
    process.stderr.write(
      `decode: --format ${values.format ?? "(missing)"} is not supported; expected: dsmr (raven, smt-csv and smarthub-json come with their sources)\n`,
    );
    return 2;
  }
  const file = positionals[0] ?? "-";
  const input = file === "-" ? process.stdin : createReadStream(file);
  const framer = new TelegramFramer();
  let offset = 0;
  let ok = 0;
  let bad = 0;
  const emit = (events: ReturnType<TelegramFramer["push"]>): void => {
    for (const ev of events) {
      if ("frame" in ev) {
        const r = decodeTelegram(ev.frame, { timezone: values.timezone, raw: values.raw });
        if (r.ok) {
          const t = r.telegram;
          ok++;
          const out: Record<string, unknown> = {
            time: t.time !== undefined ? new Date(t.time).toISOString() : null,
            values: t.values,
            meter: {
              manufacturer: t.manufacturer,
              model: t.model,
              serial: t.equipmentId,
              version: t.version,
              crc: t.crc,
            },
          };
          if (t.mbus.length) out.mbus = t.mbus.map((d) => ({ ...d, at: d.at ? new Date(d.at).toISOString() : d.at }));
          if (t.powerFailureLog)
            out.power_failure_log = t.powerFailureLog.map((f) => ({
              end: f.end === null ? null : new Date(f.end).toISOString(),
              duration_s: f.durationS,
            }));
          if (t.monthPeaks)
            out.month_peaks = t.monthPeaks.map((p) => ({
              month: p.month === null ? null : new Date(p.month).toISOString(),
              at: p.at === null ? null : new Date(p.at).toISOString(),
              w: p.w,
            }));
          if (t.raw) out.raw = t.raw;
          process.stdout.write(`${JSON.stringify(out)}\n`);
        } else {
          bad++;
          process.stderr.write(`rejected telegram (${ev.frame.length} bytes): ${r.reason}\n`);
        }
      } else {
        bad++;
        process.stderr.write(`rejected frame (${ev.bytes} bytes): ${ev.rejected}\n`);
      }
    }
  };
  try {
    for await (const chunk of input) {
      offset += (chunk as Buffer).length;
      emit(framer.push(chunk as Buffer));
    }
  } catch (err) {
    process.stderr.write(
      `decode: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
    );
    return 1;
  }
  emit(framer.end());
  if (ok === 0 && bad === 0) process.stderr.write(`decode: no telegram found in ${offset} bytes of ${file}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "run":
      return run(rest);
    case "decode":
      return decode(rest);
    case "demo":
      return runDemo(rest);
    case "--version":
    case "-v":
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined:
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${cmd}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Sockets of a stopped client can linger for a moment; the work is done, so do not wait for them.
    if (process.argv[2] !== "decode") setTimeout(() => process.exit(code), 200).unref();
  },
  (err: Error) => {
    if (err instanceof ConfigError) process.stderr.write(`meter2mqtt: ${redact(err.message)}\n`);
    else process.stderr.write(`meter2mqtt: ${redact(err.stack ?? err.message)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
