#!/usr/bin/env node
/**
 * Builds the publishable @weft packages: `tsc -b tsconfig.build.json` compiles each one's `src/` to
 * `dist/` (JavaScript, .d.ts, source maps with their sources inline), in dependency order and
 * incrementally; then the .proto files a package ships but the repository keeps in the root buf module
 * (`proto/`) are copied into the package's `proto/` (git-ignored there). The workspace itself never
 * needs this: it runs the sources (the "@weft/source" export condition).
 */
import { execFileSync } from "node:child_process";
import { cpSync } from "node:fs";
import { createRequire } from "node:module";

const root = new URL("../", import.meta.url);

/** Files of the root `proto/` that a package ships under its own `proto/`. */
const shippedProtos = {
  "packages/protoc-gen-weft": ["weft/v1/options.proto"],
  "packages/http": ["google/api/annotations.proto", "google/api/http.proto"],
};

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-b", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });

for (const [pkg, files] of Object.entries(shippedProtos)) {
  for (const file of files) cpSync(new URL(`proto/${file}`, root), new URL(`${pkg}/proto/${file}`, root));
}
