import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { addSecret } from "../util/log.js";
import { type Config, ConfigSchema, MeterSchema, secretsOf } from "./schema.js";

/** From the schema, so the message lists a new meter type without being told. */
const METER_TYPES = MeterSchema.options.map((o) => o.shape.type.value);

export const ADDON_OPTIONS = "/data/options.json";

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly issues: string[] = [],
  ) {
    super(message);
    this.name = "ConfigError";
  }
}

/** `meters[0].baud` from ["meters", 0, "baud"]. */
function keyPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(top level)";
}

function describe(issue: z.core.$ZodIssue, input: unknown): string {
  const where = keyPath(issue.path);
  let got: unknown = input;
  for (const p of issue.path)
    got = got && typeof got === "object" ? (got as Record<PropertyKey, unknown>)[p] : undefined;
  switch (issue.code) {
    case "unrecognized_keys":
      return `${where}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
    case "invalid_union":
      if ("discriminator" in issue && issue.discriminator) {
        const at = issue.path.at(-1) === issue.discriminator ? where : `${where}.${issue.discriminator}`;
        return `${at}: expected one of the supported meter types (${METER_TYPES.join(", ")})`;
      }
      {
        // A union of literals (baud: auto | 115200 | 9600): list what would have been accepted.
        const options = (issue.errors ?? []).flat().flatMap((i) => (i.code === "invalid_value" ? i.values : []));
        if (options.length > 0)
          return `${where}: expected one of ${options.map((o) => JSON.stringify(o)).join(", ")} (got ${JSON.stringify(got)})`;
      }
      return `${where}: ${issue.message}`;
    case "invalid_type":
      return got === undefined
        ? `${where}: missing, expected ${issue.expected}`
        : `${where}: expected ${issue.expected}, got ${typeof got}`;
    default: {
      // Secrets are not echoed back; everything else is, so the user sees what was read.
      const shown = /password|token|secret|(^|\.)(key|aad)$/i.test(where)
        ? ""
        : got !== undefined && typeof got !== "object"
          ? ` (got ${JSON.stringify(got)})`
          : "";
      return `${where}: ${issue.message}${shown}`;
    }
  }
}

export function parseConfig(input: unknown, source = "config"): Config {
  const result = ConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => describe(i, input));
    throw new ConfigError(`invalid ${source}:\n  ${issues.join("\n  ")}`, issues);
  }
  for (const s of secretsOf(result.data)) addSecret(s);
  return result.data;
}

/** The file read when no --config is given outside the app: in the folder the command runs in. */
export const DEFAULT_CONFIG = "meter2mqtt.yaml";

/** Reads a YAML (or JSON) file; without a path, the add-on's /data/options.json, else ./meter2mqtt.yaml. */
export function loadConfig(path?: string): { config: Config; source: string } {
  const file =
    path ?? (existsSync(ADDON_OPTIONS) ? ADDON_OPTIONS : existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  if (!file)
    throw new ConfigError(
      `no configuration: pass --config FILE or put ${DEFAULT_CONFIG} in this folder (the Home Assistant app has ${ADDON_OPTIONS})`,
    );
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `${file} is not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
  return { config: parseConfig(raw ?? {}, file), source: file };
}
