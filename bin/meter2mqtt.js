#!/usr/bin/env node
// Runs the compiled CLI (built by `npm ci` through the prepare script).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(dist))) {
  console.error("meter2mqtt: dist/ is missing; run `npm run build` (npm ci does it for you).");
  process.exit(1);
}
await import(dist.href);
