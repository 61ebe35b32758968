#!/usr/bin/env node
// The npm registry this project is built against mirrors platform-specific optional packages (biome's and
// rollup's native binaries for macOS, Windows, musl…) only for some versions, so `npm install` on Linux
// leaves them out of package-lock.json, and `npm ci` then refuses the lock as out of sync. This adds the
// missing entries as optional, with the os/cpu/libc that their names state, so `npm ci` skips them on
// platforms they are not for and installs the one it needs. Run it after changing dependencies:
//   npm install && node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const pkgs = lock.packages;
const OS = ["android", "darwin", "freebsd", "linux", "openbsd", "openharmony", "win32", "sunos", "aix", "netbsd"];
const CPU = ["arm64", "x64", "ia32", "arm", "loong64", "ppc64", "riscv64", "s390x", "mips64el", "wasm32"];
let added = 0;
for (const meta of Object.values(pkgs)) {
  for (const [dep, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const at = `node_modules/${dep}`;
    if (pkgs[at] || dep === "fsevents") continue;
    const parts = dep.split("/").pop().split("-");
    const os = parts.find((p) => OS.includes(p)) ?? (parts.includes("win32") ? "win32" : undefined);
    const cpu =
      parts.find((p) => CPU.includes(p)) ?? (parts.includes("eabi") || parts.includes("gnueabihf") ? "arm" : undefined);
    if (!os || !cpu) continue;
    const entry = { version, dev: meta.dev, optional: true, os: [os], cpu: [cpu] };
    if (parts.includes("musl") || parts.includes("musleabihf")) entry.libc = ["musl"];
    else if (os === "linux") entry.libc = ["glibc"];
    if (!meta.dev) delete entry.dev;
    pkgs[at] = entry;
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))),
);
lock.packages = sorted;
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added} optional platform entries added`);
