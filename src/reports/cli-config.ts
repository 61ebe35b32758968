import { addonOptionsFound, loadAddonConfig } from "../addon/index.js";
import { loadConfig } from "../config/load.js";
import type { Config } from "../config/schema.js";

/** The configuration as `run` reads it: --config, else the add-on's options.json when there is one. */
export async function loadCliConfig(path: string | undefined): Promise<Config> {
  return (path === undefined && addonOptionsFound() ? await loadAddonConfig() : loadConfig(path)).config;
}
