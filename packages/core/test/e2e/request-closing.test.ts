import { createTcpTransport, type Server } from "../../src/index.ts";
import { requestClosingSuite } from "../request-closing.ts";
import { responseClosingSuite } from "../response-closing.ts";

async function listen(server: Server) {
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  const transport = createTcpTransport({ address: `127.0.0.1:${port}`, poolSize: 1 });
  return { transport, close: () => transport.close() };
}

requestClosingSuite(listen);
responseClosingSuite(listen);
