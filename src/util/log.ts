/**
 * Plain-text logging with namespaces and lazy messages. One line per event, as the HA add-on log
 * shows it. Hand-written on purpose: the Supervisor log wants plain lines (pino writes JSON and needs a
 * worker-thread transport to pretty-print), and this is the whole of what we need.
 * Every message passes through `redact`, so a secret registered at start-up never reaches the log.
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

type Msg = string | (() => string);
export interface Logger {
  debug(msg: Msg): void;
  info(msg: Msg): void;
  warn(msg: Msg): void;
  error(msg: Msg): void;
  child(ns: string): Logger;
}

let threshold = ORDER[(process.env.METER2MQTT_LOG_LEVEL as Level) ?? "info"] ?? ORDER.info;
let sink: (line: string, level: Level) => void = (line, level) => {
  (level === "error" || level === "warn" ? process.stderr : process.stdout).write(`${line}\n`);
};
const secrets = new Set<string>();

export function setLogLevel(level: Level): void {
  threshold = ORDER[level];
}
export function setLogSink(fn: (line: string, level: Level) => void): void {
  sink = fn;
}
/** Register a value that must never be printed (passwords, tokens). */
export function addSecret(value: string | undefined): void {
  if (value && value.length >= 3) secrets.add(value);
}
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("***");
  return out;
}

export function createLogger(ns: string): Logger {
  const emit = (level: Level, msg: Msg): void => {
    if (ORDER[level] < threshold) return;
    const text = typeof msg === "function" ? msg() : msg;
    sink(redact(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${ns}] ${text}`), level);
  };
  return {
    debug: (m) => emit("debug", m),
    info: (m) => emit("info", m),
    warn: (m) => emit("warn", m),
    error: (m) => emit("error", m),
    child: (sub) => createLogger(`${ns}:${sub}`),
  };
}

export const rootLogger = createLogger("meter2mqtt");
