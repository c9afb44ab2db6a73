import { createTcpTransport } from "../../src/index.ts";
import { requestClosingSuite } from "../request-closing.ts";

requestClosingSuite(async (server) => {
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const transport = createTcpTransport({ address: `127.0.0.1:${port}`, poolSize: 1 });
  return { transport, close: () => transport.close() };
});
