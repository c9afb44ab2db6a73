#!/usr/bin/env node
// Launcher. Installed from npm it runs the compiled plugin (dist/). In the Weft repository, npm runs
// Node with the "@weft/source" condition (see .npmrc), which selects the TypeScript sources instead.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = import.meta.resolve("#main");
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(
    "protoc-gen-weft: dist/ is missing: build it with `npm run build`, or run the sources through npm (npx protoc-gen-weft).\n",
  );
  process.exit(1);
}
if (main.endsWith(".ts") && !process.features.typescript) {
  process.stderr.write(
    `protoc-gen-weft: running from the TypeScript sources needs a Node.js that strips types (>= 22.18); this is ${process.version} at ${process.execPath}.\n` +
      "Run code generation through `npm run gen` or `weft gen`, which put the project's Node first on PATH.\n",
  );
  process.exit(1);
}
await import(main);
