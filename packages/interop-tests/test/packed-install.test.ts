/**
 * The packages as users get them: builds the workspace (`npm run build`'s script), packs every
 * publishable @weft package with `npm pack`, installs the tarballs into a fresh project in the system's
 * temporary directory (their third-party dependencies come from the npm registry), and there generates
 * code with the `weft` CLI from a small `.proto`, compiles a client and a server against the packages'
 * `.d.ts` and runs them on Node 22 and Node 24: Weft over TCP (unary, server streaming, one-way), gRPC
 * through @weft/grpc and REST through @weft/http. The consumer project is `../packed`. Node 24 is the
 * repository's own (the `node` devDependency); Node 22 comes from the `node` npm package, installed
 * once into `node_modules/.cache/weft-node22`.
 */
import { type ChildProcessByStdio, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repoRoot = resolve(import.meta.dirname, "../../..");
const consumerSources = resolve(import.meta.dirname, "../packed");
const node22Cache = join(repoRoot, "node_modules/.cache/weft-node22");
const node22 = join(node22Cache, "node_modules/node/bin/node");
const node24 = process.execPath;

interface PackageJson {
  name: string;
  private?: boolean;
  bin?: Record<string, string>;
  exports?: Record<string, Record<string, string>>;
  imports?: Record<string, Record<string, string>>;
  devDependencies?: Record<string, string>;
}
interface Packed {
  name: string;
  filename: string;
  files: { path: string }[];
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, "utf8")) as T;

/**
 * The environment of every process the test starts: no `@weft/source` condition, no npm script
 * variables of the run that started the tests, and no workspace `node_modules/.bin` on PATH; the given
 * Node first.
 */
function cleanEnv(node: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === "NODE_OPTIONS" || key.startsWith("npm_")) continue;
    env[key] = value;
  }
  const path = (process.env.PATH ?? "").split(delimiter).filter((dir) => !dir.includes("node_modules"));
  env.PATH = [dirname(node), ...path].join(delimiter);
  return env;
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(command: string, args: string[], cwd: string, node = node24): Promise<string> {
  return new Promise((done, fail) => {
    execFile(command, args, { cwd, env: cleanEnv(node), maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error === null) done(stdout);
      else
        fail(
          new Error(`${command} ${args.join(" ")} failed in ${cwd}: ${error.message}\n${stdout}${stderr}`),
        );
    });
  });
}

/** Node 22 from the `node` npm package, installed once into the repository's cache. */
async function installNode22(): Promise<void> {
  const version = await run(node22, ["--version"], repoRoot).catch(() => "");
  if (version.startsWith("v22.")) return;
  await rm(node22Cache, { recursive: true, force: true });
  await mkdir(node22Cache, { recursive: true });
  // the package's preinstall script fetches the binary for this platform
  await writeFile(
    join(node22Cache, "package.json"),
    JSON.stringify({ private: true, allowScripts: { node: true } }),
  );
  await run("npm", ["install", "--no-audit", "--no-fund", "node@22"], node22Cache);
}

let work: string;
let app: string;
let publishable: PackageJson[];
let packed: Packed[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "weft-packed-"));
  app = join(work, "app");
  const tarballs = join(work, "tarballs");
  await mkdir(tarballs);

  const dirs = (await readdir(join(repoRoot, "packages"))).map((name) => join("packages", name));
  const manifests = await Promise.all(
    dirs.map(async (dir) => ({ dir, pkg: await readJson<PackageJson>(join(repoRoot, dir, "package.json")) })),
  );
  const toPack = manifests.filter(({ pkg }) => pkg.private !== true);
  publishable = toPack.map(({ pkg }) => pkg);

  const packAndInstall = async () => {
    await run(node24, ["scripts/build.mjs"], repoRoot);
    const workspaces = toPack.flatMap(({ dir }) => ["--workspace", dir]);
    const json = await run(
      "npm",
      ["pack", "--ignore-scripts", "--json", "--pack-destination", tarballs, ...workspaces],
      repoRoot,
    );
    packed = JSON.parse(json) as Packed[];

    await cp(consumerSources, app, { recursive: true });
    const root = await readJson<PackageJson>(join(repoRoot, "package.json"));
    const dependencies = Object.fromEntries(
      packed.map((p) => [p.name, `file:${join(tarballs, p.filename)}`]),
    );
    const dev = ["@bufbuild/protoc-gen-es", "@types/node"];
    await writeFile(
      join(app, "package.json"),
      JSON.stringify({
        name: "weft-packed-app",
        private: true,
        type: "module",
        dependencies,
        devDependencies: Object.fromEntries(dev.map((name) => [name, root.devDependencies?.[name]])),
        allowScripts: { "@bufbuild/buf": true, "msgpackr-extract": true },
      }),
    );
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], app);
  };
  await Promise.all([packAndInstall(), installNode22()]);

  // the code generated on Node 24 is what the app compiles
  await run(node24, [join(app, "node_modules/.bin/weft"), "gen"], app);
  await run(node24, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], app);
}, 600_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe("the packed packages", () => {
  it("hold their compiled code, launchers and .proto files, no sources or tests", () => {
    expect(publishable.map((p) => p.name).sort()).toEqual([
      "@weft/broker-nats",
      "@weft/broker-rabbitmq",
      "@weft/broker-redis",
      "@weft/cli",
      "@weft/core",
      "@weft/grpc",
      "@weft/http",
      "@weft/messaging",
      "@weft/observability",
      "@weft/outbox-postgres",
      "@weft/protoc-gen-weft",
      "@weft/registry-etcd",
      "@weft/resilience",
      "@weft/resilience-redis",
    ]);
    for (const pkg of publishable) {
      const files = packed.find((p) => p.name === pkg.name)?.files.map((f) => f.path) ?? [];
      const targets = [
        ...Object.values(pkg.exports ?? {}).flatMap((e) => [e.types, e.default]),
        ...Object.values(pkg.imports ?? {}).map((e) => e.default),
        ...Object.values(pkg.bin ?? {}),
      ];
      for (const target of targets) expect(files, `${pkg.name}: ${target}`).toContain(target?.slice(2));
      expect(files, pkg.name).toContain("dist/index.js.map");
      expect(
        files.filter((f) => f.startsWith("src/") || f.includes(".test.") || f.endsWith(".tsbuildinfo")),
      ).toEqual([]);
    }
    const files = (name: string) => packed.find((p) => p.name === name)?.files.map((f) => f.path);
    expect(files("@weft/protoc-gen-weft")).toContain("proto/weft/v1/options.proto");
    expect(files("@weft/http")).toEqual(
      expect.arrayContaining(["proto/google/api/annotations.proto", "proto/google/api/http.proto"]),
    );
    expect(files("@weft/grpc")).toContain("proto/grpc/health/v1/health.proto");
  });

  it("source maps carry their TypeScript sources", async () => {
    const map = await readJson<{ sources: string[]; sourcesContent?: string[] }>(
      join(app, "node_modules/@weft/core/dist/index.js.map"),
    );
    expect(map.sources).toEqual(["../src/index.ts"]);
    expect(map.sourcesContent?.[0]).toContain("export {");
  });

  it("weft gen (buf, protoc-gen-es, protoc-gen-weft) generates the same code on Node 22 as on Node 24", async () => {
    const generated = ["google/api/annotations_pb.ts", "shop/v1/shop_pb.ts", "shop/v1/shop_weft.ts"];
    const weft = join(app, "node_modules/.bin/weft");
    await run(node22, [weft, "gen", "--output", "node22"], app);
    for (const file of generated) {
      const on24 = await readFile(join(app, "src/gen", file), "utf8");
      expect(await readFile(join(app, "node22/src/gen", file), "utf8"), file).toBe(on24);
    }
    const weftCode = await readFile(join(app, "src/gen/shop/v1/shop_weft.ts"), "utf8");
    expect(weftCode).toContain('readonly audit: MethodDef<AuditEvent, void, "oneway"');
    expect(await run(node22, [weft, "--version"], app)).toMatch(/^weft 0\.1\.0\n$/);
  });

  for (const [major, node] of [
    ["22", node22],
    ["24", node24],
  ] as const) {
    it(`serves and calls over Weft TCP, gRPC and REST on Node ${major}`, async () => {
      const server: ChildProcessByStdio<Writable, Readable, null> = spawn(node, ["dist/server.js"], {
        cwd: app,
        env: cleanEnv(node),
        stdio: ["pipe", "pipe", "inherit"],
      });
      try {
        const lines = createInterface({ input: server.stdout })[Symbol.asyncIterator]();
        const line = async () => {
          const next = await lines.next();
          if (next.done) throw new Error("the server exited");
          return next.value;
        };
        const ports = await line();
        const result = JSON.parse(await run(node, ["dist/client.js", ports], app, node));
        expect(result).toEqual({
          node: expect.stringMatching(new RegExp(`^${major}\\.`)),
          unary: { sku: "A-1", name: "item A-1", priceCents: "1250" },
          stream: ["tick 0=100", "tick 1=101", "tick 2=102"],
          grpc: { sku: "B-2", priceCents: "1250" },
          rest: { status: 200, body: { sku: "C-3", name: "item C-3", priceCents: "1250" } },
        });
        const exit = once(server, "exit");
        server.stdin.end(); // the server shuts down and reports the one-way calls it received
        expect(JSON.parse(await line())).toEqual({ audits: 1 });
        expect(await exit).toEqual([0, null]);
      } finally {
        server.kill();
      }
    });
  }
});
