/**
 * Start-up inside the Home Assistant add-on: options from /data/options.json, the MQTT broker from the Supervisor
 * unless the user set one, Home Assistant through the Supervisor's proxy, the archive under /data. Each decision
 * gets a log line, so the add-on's Log tab tells the user where the bridge connects and why.
 *
 * Environment (all optional outside tests): METER2MQTT_OPTIONS (default /data/options.json; the archive goes in the
 * same folder), SUPERVISOR_URL (default http://supervisor), SUPERVISOR_TOKEN (set by the Supervisor).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { ADDON_OPTIONS, ConfigError, parseConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { addSecret, createLogger, type Logger } from "../util/log.js";
import { addonToConfig, optionSecrets, type SupervisorMqtt, wantsSupervisorMqtt } from "./options.js";
import { fetchMqttService, type SupervisorClientOptions, SupervisorError } from "./supervisor.js";

export {
  addonToConfig,
  coreWebsocketUrl,
  FLATTENED_METER_OPTIONS,
  NESTED_METER_OPTIONS,
  optionSecrets,
  SHARE_DIR,
  type SupervisorMqtt,
  wantsSupervisorMqtt,
} from "./options.js";
export { fetchMqttService, SupervisorError } from "./supervisor.js";

export const SUPERVISOR_URL = "http://supervisor";

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
    throw new ConfigError(`cannot read the add-on options ${file}: ${why}`);
  }
  // Before anything is logged: the user's own passwords (broker, mailboxes) must not show up in the lines below.
  for (const secret of optionSecrets(options)) addSecret(secret);
  log.info(`add-on start: options from ${file}`);

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

  const { config, decisions, renamed } = addonToConfig(options, {
    dataDir: dirname(file),
    mqttService,
    supervisorUrl,
    supervisorToken: token,
  });
  for (const line of decisions) log.info(line);
  try {
    return { config: parseConfig(config, file), source: `${file} (add-on)` };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Name the option the user filled in, not the app key it became.
    const rename = (line: string): string => {
      const path = Object.keys(renamed).find((p) => line.startsWith(`${p}:`));
      return path ? renamed[path] + line.slice(path.length) : line;
    };
    const issues = err.issues.map(rename);
    throw new ConfigError(`invalid ${file}:\n  ${issues.join("\n  ")}`, issues);
  }
}
