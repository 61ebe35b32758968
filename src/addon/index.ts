/**
 * Start-up inside the Home Assistant add-on: options from /data/options.json, the MQTT broker from the Supervisor
 * unless the user set one, Home Assistant through the Supervisor's proxy, the archive under /data. Each decision
 * gets a log line, so the add-on's Log tab tells the user where the bridge connects and why.
 *
 * What a form cannot express comes from an optional YAML file in the app's own config folder (the `addon_config`
 * map, /config inside), in the shape of the standalone config file, merged over the options.
 *
 * Environment (all optional outside tests): METER2MQTT_OPTIONS (default /data/options.json; the archive goes in the
 * same folder), METER2MQTT_CONFIG_DIR (default /config, where meter2mqtt.yaml is looked for), METER2MQTT_WEB_PORT
 * (default 8099, the watchdog's), SUPERVISOR_URL (default http://supervisor), SUPERVISOR_TOKEN (set by the
 * Supervisor).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseYaml } from "yaml";
import { ADDON_OPTIONS, ConfigError, parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { addSecret, createLogger, type Logger } from "../util/log.js";
import { restoreArchiveCopy } from "./backup.js";
import {
  ADDON_YAML_FILE,
  addonToConfig,
  mergeYaml,
  optionSecrets,
  renameIssue,
  type SupervisorMqtt,
  wantsSupervisorMqtt,
  yamlSecrets,
} from "./options.js";
import { fetchMqttService, type SupervisorClientOptions, SupervisorError } from "./supervisor.js";

export { BACKUP_COPY, BACKUP_EXCLUDE, backupPost, backupPre, restoreArchiveCopy, SETTLE_MS } from "./backup.js";
export {
  ADDON_FILLED,
  ADDON_YAML_FILE,
  addonToConfig,
  coreWebsocketUrl,
  FLATTENED_METER_OPTIONS,
  FLATTENED_OPTIONS,
  mergeYaml,
  NESTED_METER_OPTIONS,
  NESTED_OPTIONS,
  optionSecrets,
  renameIssue,
  SHARE_DIR,
  type SupervisorMqtt,
  TARIFF_OPTIONS,
  WEB_PORT,
  wantsSupervisorMqtt,
  YAML_ONLY,
} from "./options.js";
export { fetchMqttService, SupervisorError } from "./supervisor.js";

export const SUPERVISOR_URL = "http://supervisor";
/** The app's own config folder inside the container (config.yaml `map: addon_config`). */
export const ADDON_CONFIG_DIR = "/config";

type Env = Record<string, string | undefined>;

export function addonOptionsPath(env: Env = process.env): string {
  return env.METER2MQTT_OPTIONS || ADDON_OPTIONS;
}

/** `run` without --config starts as the add-on when the Supervisor's options file is there. */
export function addonOptionsFound(env: Env = process.env): boolean {
  return existsSync(addonOptionsPath(env));
}

export interface LoadAddonOptions {
  env?: Env;
  log?: Logger;
  /** Retry settings for the Supervisor call (tests shorten them). */
  supervisor?: Pick<SupervisorClientOptions, "attempts" | "retryDelayMs" | "timeoutMs" | "sleep">;
}

export async function loadAddonConfig(opts: LoadAddonOptions = {}): Promise<{ config: Config; source: string }> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? createLogger("addon");
  const file = addonOptionsPath(env);
  const token = env.SUPERVISOR_TOKEN || undefined;
  const supervisorUrl = env.SUPERVISOR_URL || SUPERVISOR_URL;
  addSecret(token);

  let options: unknown;
  try {
    options = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`cannot read the app options ${file}: ${why}`);
  }
  // Before anything is logged: the user's own passwords (broker, mailboxes) must not show up in the lines below.
  for (const secret of optionSecrets(options)) addSecret(secret);
  const yamlFile = join(env.METER2MQTT_CONFIG_DIR || ADDON_CONFIG_DIR, ADDON_YAML_FILE);
  let yaml: unknown;
  if (existsSync(yamlFile)) {
    try {
      yaml = parseYaml(readFileSync(yamlFile, "utf8")) ?? {};
    } catch (err) {
      throw new ConfigError(`${yamlFile} is not valid YAML: ${(err as Error).message}`);
    }
    for (const secret of yamlSecrets(yaml)) addSecret(secret);
  }
  log.info(`app start: options from ${file}${yaml === undefined ? "" : `, merged with ${yamlFile}`}`);

  let mqttService: SupervisorMqtt | undefined;
  if (wantsSupervisorMqtt(options)) {
    if (!token)
      throw new ConfigError(
        "mqtt.url is blank and SUPERVISOR_TOKEN is not set, so the broker cannot be asked of the Supervisor: set mqtt.url",
      );
    log.info(`MQTT: mqtt.url is blank, asking the Supervisor (${supervisorUrl}) for its MQTT service`);
    try {
      mqttService = await fetchMqttService({ url: supervisorUrl, token, ...opts.supervisor });
    } catch (err) {
      if (err instanceof SupervisorError) throw new ConfigError(`MQTT: ${err.message}`);
      throw err;
    }
    addSecret(mqttService.password);
  } else log.info("MQTT: mqtt.url is set in the options, the Supervisor's broker is not used");

  const dataDir = dirname(file);
  const webPort = env.METER2MQTT_WEB_PORT ? Number(env.METER2MQTT_WEB_PORT) : undefined;
  const made = addonToConfig(options, { dataDir, mqttService, supervisorUrl, supervisorToken: token, webPort });
  const merged = yaml === undefined ? { config: made.config, renamed: {} } : mergeYaml(made.config, yaml, yamlFile);
  for (const line of made.decisions) log.info(line);
  if (yaml !== undefined) log.info(`${yamlFile}: ${Object.keys(yaml as object).join(", ") || "empty"}`);
  const renamed = { ...made.renamed, ...merged.renamed };
  let config: Config;
  try {
    config = parseConfig(merged.config, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Name the option the user filled in or the key of the YAML file, not the app key it became.
    const issues = err.issues.map((line) => renameIssue(line, renamed));
    throw new ConfigError(`invalid ${file}:\n  ${issues.join("\n  ")}`, issues);
  }
  // After a restore the backup's consistent copy of the archive becomes the archive (src/addon/backup.ts).
  const restored = restoreArchiveCopy(dataDir);
  if (restored === "restored") log.info("archive: restored from the backup's consistent copy");
  else if (restored === "discarded") log.info("archive: removed a copy left over from an unfinished backup");
  return { config, source: `${file} (app)` };
}
