import type { Level, Logger } from "../../src/util/log.js";

/** A Logger that keeps what it is told, for tests that assert how often something was logged. */
export function recordingLog() {
  const lines: { level: Level; text: string }[] = [];
  const make = (): Logger => {
    const at =
      (level: Level) =>
      (m: string | (() => string)): void => {
        lines.push({ level, text: typeof m === "function" ? m() : m });
      };
    return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), child: () => make() };
  };
  return { log: make(), lines, at: (level: Level) => lines.filter((l) => l.level === level).map((l) => l.text) };
}
