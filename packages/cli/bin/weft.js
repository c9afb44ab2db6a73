#!/usr/bin/env node
// Launcher. Installed from npm it runs the compiled CLI (dist/). In the Weft repository, npm runs
// Node with the "@weft/source" condition (see .npmrc), which selects the TypeScript sources instead.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = import.meta.resolve("#main");
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(
    "weft: dist/ is missing: build it with `npm run build`, or run the sources through npm (npx weft).\n",
  );
  process.exit(2);
}
if (main.endsWith(".ts") && !process.features.typescript) {
  process.stderr.write(
    `weft: running from the TypeScript sources needs a Node.js that strips types (>= 22.18); this is ${process.version} at ${process.execPath}.\n` +
      "Run it through an npm script or `npx weft`, which put the project's Node first on PATH.\n",
  );
  process.exit(2);
}
const { run } = await import(main);
process.exitCode = await run(process.argv.slice(2));
