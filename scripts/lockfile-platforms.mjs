#!/usr/bin/env node
/**
 * Completes package-lock.json with the platform variants of optional native packages (Biome's and
 * buf's per-OS binaries) that npm could not resolve because the registry in use does not carry them.
 * Without an entry for every optional dependency, `npm ci` refuses the lockfile as out of sync.
 * The added entries only say which OS/CPU a variant is for, so npm skips them on every other
 * platform, as it does for variants it resolved itself. Run after changing dependencies:
 * `node scripts/lockfile-platforms.mjs`.
 */
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const packages = lock.packages;

/** os, cpu and libc of a platform package, read off its name (e.g. cli-linux-arm64-musl, buf-win32-x64). */
function platformOf(name) {
  const os = ["darwin", "linux", "win32", "android", "freebsd"].find((o) => name.includes(`-${o}-`));
  const cpu = ["arm64", "aarch64", "armv7", "x64", "ia32"].find((c) => name.includes(`-${c}`));
  if (os === undefined || cpu === undefined) return undefined;
  return {
    os,
    cpu: cpu === "aarch64" ? "arm64" : cpu === "armv7" ? "arm" : cpu,
    musl: name.endsWith("-musl"),
  };
}

let added = 0;
for (const [key, entry] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const at = `node_modules/${dep}`;
    if (packages[at] !== undefined) continue;
    const platform = platformOf(dep);
    if (platform === undefined) continue;
    const stub = { version, cpu: [platform.cpu] };
    if (entry.dev === true) stub.dev = true;
    if (platform.os === "linux") stub.libc = [platform.musl ? "musl" : "glibc"];
    if (entry.license !== undefined) stub.license = entry.license;
    stub.optional = true;
    stub.os = [platform.os];
    packages[at] = stub;
    added++;
    console.log(`added ${at}@${version} (${platform.os}/${platform.cpu}) for ${key}`);
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`${added} platform entr${added === 1 ? "y" : "ies"} added`);
