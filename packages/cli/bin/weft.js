#!/usr/bin/env node
// Launcher: the CLI is TypeScript, run by Node's type stripping (Node >= 22.18, or 23.6).
if (!process.features.typescript) {
  process.stderr.write(
    `weft: needs a Node.js that runs TypeScript (>= 22.18); this is ${process.version} at ${process.execPath}.\n` +
      "Run it through an npm script or `npx weft`, which put the project's Node first on PATH.\n",
  );
  process.exit(2);
}
const { run } = await import("../src/main.ts");
process.exitCode = await run(process.argv.slice(2));
