import { createEcmaScriptPlugin } from "@bufbuild/protoplugin";
import pkg from "../package.json" with { type: "json" };
import { generateTs } from "./generate.ts";

/**
 * The `protoc-gen-weft` plugin: for every `.proto` file with services it writes `<name>_weft.ts` next
 * to protoc-gen-es's `<name>_pb.ts`, holding for each service `Foo` the Weft service definition
 * `FooService`, its method map type `FooMethods`, the client type `FooClient`, the server interface
 * `FooHandlers` and `createFooClient(transport, options)`.
 */
export const protocGenWeft = createEcmaScriptPlugin({
  name: "protoc-gen-weft",
  version: `v${pkg.version}`,
  parseOptions(rawOptions) {
    for (const { key } of rawOptions) {
      throw new Error(
        `unknown option "${key}"; protoc-gen-weft takes only the standard options (target, import_extension, …)`,
      );
    }
    return {};
  },
  generateTs,
});
