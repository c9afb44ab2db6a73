#!/usr/bin/env node
// Launcher: the plugin is TypeScript, run by Node's type stripping (Node >= 22.18, or 23.6).
if (!process.features.typescript) {
  process.stderr.write(
    `protoc-gen-weft: needs a Node.js that runs TypeScript (>= 22.18); this is ${process.version} at ${process.execPath}.\n` +
      "Run code generation through `npm run gen` or `weft gen`, which put the project's Node first on PATH.\n",
  );
  process.exit(1);
}
await import("../src/main.ts");
