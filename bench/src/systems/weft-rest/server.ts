import { create } from "@bufbuild/protobuf";
import { createServer, protoService } from "@weft/core";
import { listenRest } from "@weft/http";
import { Echo, EchoReplySchema, type EchoRequest } from "../../gen/bench/v1/echo_pb.ts";
import type { BenchServer } from "../../types.ts";

/**
 * A Weft server with the protobuf service `bench.v1.Echo`, served as REST/JSON by `@weft/http` from
 * its `google.api.http` rule (`POST /v1/echo`, body `*`). Its client is the `node:http` client of
 * system `http`, the bare `node:http` JSON echo it is compared with.
 */
export async function startServer(): Promise<BenchServer> {
  const server = createServer();
  server.register(protoService(Echo), {
    echo: (req: EchoRequest) => create(EchoReplySchema, { data: req.data }),
  });
  const rest = await listenRest(server, { host: "127.0.0.1", port: 0 });
  return {
    port: rest.port,
    close: async () => {
      await server.shutdown({ timeoutMs: 1000 });
      await rest.close();
    },
  };
}
