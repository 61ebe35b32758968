import { createReadStream } from "node:fs";
import { parseArgs } from "node:util";
import { addonOptionsFound, loadAddonConfig } from "./addon/index.js";
import { App } from "./app.js";
import { ConfigError, loadConfig } from "./config/load.js";
import { DECODERS } from "./sources/index.js";
import { BACKFILL_USAGE, EXPORT_USAGE, IMPORT_USAGE, REPORT_USAGE } from "./usage.js";
import { createLogger, redact } from "./util/log.js";
import { VERSION } from "./version.js";

const USAGE = `meter2mqtt ${VERSION}: smart meters to Home Assistant over MQTT, with a SQLite archive

Usage:
  meter2mqtt run [--config FILE]        the bridge (without --config: /data/options.json, as the add-on)
  meter2mqtt demo [--interval MS]       replays bundled captures through the whole pipeline with an
                                        embedded MQTT broker and an archive under ./data
  meter2mqtt decode --format dsmr|raven|smt-csv|smarthub-json [--timezone ZONE] [--raw] [FILE|-]
                                        one JSON object per telegram on stdout; each rejected
                                        frame as one line on stderr with the reason
${IMPORT_USAGE}
${REPORT_USAGE}
${EXPORT_USAGE}
${BACKFILL_USAGE}
  meter2mqtt --version | --help
`;

const log = createLogger("cli");

async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" } }, strict: true });
  // In the add-on, options.json needs the Supervisor's broker and the /data paths filled in (src/addon/).
  const { config, source } =
    values.config === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(values.config);
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
  const load = values.format ? DECODERS[values.format] : undefined;
  if (!load) {
    process.stderr.write(
      `decode: --format ${values.format ?? "(missing)"} is not supported; expected one of: ${Object.keys(DECODERS).join(", ")}\n`,
    );
    return 2;
  }
  const decoder = await load();
  const file = positionals[0] ?? "-";
  const input = (file === "-" ? process.stdin : createReadStream(file)) as AsyncIterable<Buffer>;
  let ok = 0;
  let bad = 0;
  try {
    for await (const item of decoder(input, { timezone: values.timezone, raw: values.raw, source: file })) {
      if (item.ok) {
        ok++;
        process.stdout.write(`${JSON.stringify(item.json)}\n`);
      } else {
        bad++;
        process.stderr.write(`rejected ${item.reason}\n`);
      }
    }
  } catch (err) {
    process.stderr.write(
      `decode: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`,
    );
    return 1;
  }
  if (ok === 0 && bad === 0) process.stderr.write(`decode: nothing found in ${file}\n`);
  return 0;
}

// `decode … | head` closes the pipe early: that is the reader being done, not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "run":
      return run(rest);
    case "decode":
      return decode(rest);
    case "demo":
      // Loaded only for the demo: the embedded broker is of no use to the bridge itself.
      return (await import("./demo.js")).runDemo(rest);
    case "import":
      return (await import("./sources/smt/import.js")).runImport(rest);
    case "report":
      return (await import("./reports/index.js")).runReport(rest);
    case "export":
      return (await import("./export/index.js")).runExport(rest);
    case "backfill":
      return (await import("./sources/smarthub/backfill.js")).runBackfill(rest);
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
    // report and export may still be writing a long stdout to a pipe: they end when it is flushed.
    if (!["decode", "report", "export"].includes(process.argv[2] ?? ""))
      setTimeout(() => process.exit(code), 200).unref();
  },
  (err: Error) => {
    if (err instanceof ConfigError) process.stderr.write(`meter2mqtt: ${redact(err.message)}\n`);
    else process.stderr.write(`meter2mqtt: ${redact(err.stack ?? err.message)}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  },
);
