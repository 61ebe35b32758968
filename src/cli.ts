import { createReadStream } from "node:fs";
import { parseArgs } from "node:util";
import { addonOptionsFound, loadAddonConfig } from "./addon/index.js";
import { App, MqttRefused } from "./app.js";
import { ConfigError, loadConfig } from "./config/load.js";
import { DECODERS } from "./sources/index.js";
import { BACKFILL_USAGE, EXPORT_USAGE, IMPORT_USAGE, REPORT_USAGE } from "./usage.js";
import { createLogger, oneLine, redact } from "./util/log.js";
import { VERSION } from "./version.js";

const USAGE = `meter2mqtt ${VERSION}: smart meters to Home Assistant over MQTT, with a SQLite archive

Usage:
  meter2mqtt run [--config FILE]        the bridge (without --config: /data/options.json as the app in HA,
                                        else meter2mqtt.yaml in the current folder)
  meter2mqtt demo [--interval MS] [--web [--web-port N]]
                                        replays bundled captures through the whole pipeline with an
                                        embedded MQTT broker and an archive under ./data; --web serves
                                        the bridge's page (the captures in a loop) until Ctrl-C
  meter2mqtt decode --format dsmr|han|raven|smt-csv|smarthub-json [--timezone ZONE] [--raw]
                  [--key HEX [--aad HEX]] [FILE|-]
                                        one JSON object per telegram on stdout; each rejected
                                        frame as one line on stderr with the reason; --key and
                                        --aad read encrypted P1 and HAN (the keys from your grid
                                        operator); han reads raw bytes or hex text
${IMPORT_USAGE}
${REPORT_USAGE}
${EXPORT_USAGE}
${BACKFILL_USAGE}
  meter2mqtt check [--config FILE] [--wait S]
                                        tries every part for real (meters, broker, mailbox, portal,
                                        Home Assistant, influx): one line each, exit 0 when all work
  meter2mqtt health [--config FILE]     asks the running bridge how it is (GET /health with web:,
                                        else its retained bridge/health message): exit 0 when ok
  meter2mqtt --version | --help

  --debug (with any command) prints the stack trace of an error as well.
  Exit status: 0 done, 1 an error while running, 2 a usage or configuration error.
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
  // The broker refused our credentials (or another reason the bridge cannot go on): stop the meters, then exit.
  const failure = app.failed.catch(async (err: Error) => {
    if (stopping) return 0;
    stopping = true;
    log.error(`${err.message}; stopping`);
    await app.stop().catch(() => {});
    return err instanceof MqttRefused ? 2 : 1;
  });
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
  // A signal during start-up (an archive still migrating, say) is answered at once: the stop's outcome is the
  // answer, and start-up, which checks for the stop at each step, is not waited for.
  const started = app.start().then(
    () => undefined,
    async (err: unknown) => {
      if (stopping) return;
      stopping = true;
      await app.stop().catch(() => {});
      throw err;
    },
  );
  const early = await Promise.race([started, done, failure]);
  if (typeof early === "number") return early;
  return Promise.race([done, failure]);
}

async function decode(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      format: { type: "string", short: "f" },
      timezone: { type: "string" },
      raw: { type: "boolean", default: false },
      key: { type: "string" },
      aad: { type: "string" },
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
  const keys: { key?: string; aad?: string } = {};
  for (const name of ["key", "aad"] as const) {
    const v = values[name]
      ?.replace(/^0x/i, "")
      .replace(/[\s:-]/g, "")
      .toLowerCase();
    if (v === undefined) continue;
    if (!/^[0-9a-f]{32}$/.test(v)) {
      process.stderr.write(`decode: --${name} expects 32 hex digits (the 16-byte key from your grid operator)\n`);
      return 2;
    }
    keys[name] = v;
  }
  const decoder = await load();
  const file = positionals[0] ?? "-";
  const input = (file === "-" ? process.stdin : createReadStream(file)) as AsyncIterable<Buffer>;
  let ok = 0;
  let bad = 0;
  try {
    for await (const item of decoder(input, { timezone: values.timezone, raw: values.raw, source: file, ...keys })) {
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

/** `--debug` anywhere on the command line: stack traces with errors. */
const DEBUG = process.argv.includes("--debug");

/** A mistake in how the command was called or configured (exit 2), rather than something going wrong (exit 1). */
function isUsageError(err: unknown): boolean {
  if (err instanceof ConfigError || err instanceof MqttRefused) return true;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

/** One line on stderr: the cause, secrets masked; the stack only with --debug. */
function reportError(err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err));
  const text = DEBUG && e.stack ? redact(e.stack) : oneLine(redact(flatten(e.message || e.name)));
  const usage = isUsageError(e);
  const hint =
    usage && /ERR_PARSE_ARGS/.test(String((e as NodeJS.ErrnoException).code)) ? " (see meter2mqtt --help)" : "";
  process.stderr.write(`meter2mqtt: ${text}${hint}\n`);
  return usage ? 2 : 1;
}

/** A message of several lines (a config error per key, a YAML excerpt) as one: "invalid x: a; b". */
function flatten(message: string): string {
  const lines = message
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  return lines.reduce((out, l, i) => (i === 0 ? l : `${out}${out.endsWith(":") ? " " : "; "}${l}`), "");
}

// Whatever escapes a handler still ends in one line and exit 1, not a Node stack trace.
process.on("uncaughtException", (err) => process.exit(reportError(err) === 2 ? 2 : 1));
process.on("unhandledRejection", (err) => process.exit(reportError(err) === 2 ? 2 : 1));

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv.filter((a) => a !== "--debug");
  switch (cmd) {
    case "run":
      return run(rest);
    case "decode": {
      // A SmartHub answer can be years of quarter hours: read with the small heap import runs with.
      const heap = await import("./util/heap.js");
      if (rest.some((a) => a.endsWith("smarthub-json")) && !heap.heapLimited()) return heap.rerunWithSmallHeap();
      return decode(rest);
    }
    case "demo":
      // Loaded only for the demo: the embedded broker is of no use to the bridge itself.
      return (await import("./demo.js")).runDemo(rest);
    case "import": {
      const heap = await import("./util/heap.js");
      if (!heap.heapLimited()) return heap.rerunWithSmallHeap();
      return (await import("./sources/smt/import.js")).runImport(rest);
    }
    case "report":
      return (await import("./reports/index.js")).runReport(rest);
    case "export":
      return (await import("./export/index.js")).runExport(rest);
    case "backfill":
      return (await import("./sources/smarthub/backfill.js")).runBackfill(rest);
    case "check":
      return (await import("./check.js")).runCheck(rest);
    case "health":
      return (await import("./check.js")).runHealth(rest);
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
  (err: unknown) => {
    process.exit(reportError(err));
  },
);
