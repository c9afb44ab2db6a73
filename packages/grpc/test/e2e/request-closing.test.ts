import type { Server } from "@weft/core";
import { requestClosingSuite } from "../../../core/test/request-closing.ts";
import { responseClosingSuite } from "../../../core/test/response-closing.ts";
import { createGrpcTransport, listenGrpc } from "../../src/index.ts";

async function listen(server: Server) {
  const listener = await listenGrpc(server);
  const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
  return {
    transport,
    close: async () => {
      await transport.close();
      await listener.close();
    },
  };
}

requestClosingSuite(listen);
responseClosingSuite(listen);
