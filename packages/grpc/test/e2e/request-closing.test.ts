import { requestClosingSuite } from "../../../core/test/request-closing.ts";
import { createGrpcTransport, listenGrpc } from "../../src/index.ts";

requestClosingSuite(async (server) => {
  const listener = await listenGrpc(server);
  const transport = createGrpcTransport({ address: `127.0.0.1:${listener.port}` });
  return {
    transport,
    close: async () => {
      await transport.close();
      await listener.close();
    },
  };
});
