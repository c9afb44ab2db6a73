import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/index.ts";
import { captureIo, repoRoot } from "./io.ts";

const template = `version: v2
inputs:
  - directory: proto
plugins:
  - local: protoc-gen-es
    out: gen
    opt: [target=ts, import_extension=ts]
  - local: protoc-gen-weft
    out: gen
    opt: [target=ts, import_extension=ts]
`;

const proto = (oneway: string) => `syntax = "proto3";
package demo.v1;
import "google/protobuf/empty.proto";
import "weft/v1/options.proto";
service Bell {
  rpc Ring(Ding) returns (${oneway}) {
    option (weft.v1.oneway) = true;
  }
}
message Ding {}
`;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "weft-cli-gen-"));
  await mkdir(join(tmp, "proto/demo/v1"), { recursive: true });
  await mkdir(join(tmp, "proto/weft/v1"), { recursive: true });
  await copyFile(join(repoRoot, "proto/weft/v1/options.proto"), join(tmp, "proto/weft/v1/options.proto"));
  await writeFile(join(tmp, "weft.gen.yaml"), template);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("weft gen", () => {
  it("runs buf generate with the template: protoc-gen-es and protoc-gen-weft, offline", async () => {
    await writeFile(join(tmp, "proto/demo/v1/bell.proto"), proto("google.protobuf.Empty"));
    const io = captureIo(tmp);
    expect(await run(["gen", "--template", "weft.gen.yaml"], io)).toBe(0);
    expect(io.stderr).toBe("");
    expect((await readdir(join(tmp, "gen/demo/v1"))).sort()).toEqual(["bell_pb.ts", "bell_weft.ts"]);
    const code = await readFile(join(tmp, "gen/demo/v1/bell_weft.ts"), "utf8");
    expect(code).toContain('readonly ring: MethodDef<Ding, void, "oneway"');
  });

  it("fails with the plugin's message when generation fails (exit 1)", async () => {
    await writeFile(join(tmp, "proto/demo/v1/bell.proto"), proto("Ding"));
    const io = captureIo(tmp);
    expect(await run(["gen", "--template", "weft.gen.yaml"], io)).toBe(1);
    expect(io.stderr).toContain(
      "rpc demo.v1.Bell.Ring (demo/v1/bell.proto) is marked (weft.v1.oneway) but returns demo.v1.Ding",
    );
    expect(io.stderr).toContain("weft gen: buf generate failed (exit code 1)");
  });

  it("needs a template (exit 2)", async () => {
    const io = captureIo(tmp);
    expect(await run(["gen"], io)).toBe(2);
    expect(io.stderr).toContain("no generation template at buf.gen.yaml");
  });
});
