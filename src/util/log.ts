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
    const text = oneLine(typeof msg === "function" ? msg() : msg);
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

/**
 * Control characters (a newline above all) written as escapes: one event is one line, and nothing a meter, a
 * portal or an MQTT client sends can start a line of its own that looks like the bridge's.
 */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]/g, escapeChar);
}

function escapeChar(c: string): string {
  if (c === "\n") return "\\n";
  if (c === "\r") return "\\r";
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Outside input as it goes into a log line: a JSON string (quotes, backslashes and control characters escaped),
 * cut to `max` characters with an ellipsis after the closing quote when there was more.
 */
export function quote(input: string, max = 40): string {
  const cut = input.length > max ? input.slice(0, max) : input;
  const json = JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return input.length > max ? `${json}… (${input.length} characters)` : json;
}

/**
 * Warnings about something outside keeps sending (bad MQTT commands, a flood): the first of each key is logged,
 * the rest of the window are counted, and the next one logged says how many were left out. Keys are the
 * bridge's own (a load, a topic), never the input, so the map stays small.
 */
export class LogLimiter {
  private readonly seen = new Map<string, { until: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs `msg` unless one of `key` was logged within the window; says whether it did. */
  warn(key: string, msg: string): boolean {
    const t = this.now();
    const s = this.seen.get(key);
    if (s && t < s.until) {
      s.suppressed++;
      return false;
    }
    const more =
      s && s.suppressed > 0
        ? ` (${s.suppressed} more like it in the ${Math.round(this.windowMs / 1000)} s before were not logged)`
        : "";
    this.seen.set(key, { until: t + this.windowMs, suppressed: 0 });
    this.log.warn(`${msg}${more}`);
    return true;
  }

  /** How many were left out of the log in the current window of `key`. */
  suppressed(key: string): number {
    return this.seen.get(key)?.suppressed ?? 0;
  }
}
