import {
  bidiStreaming,
  clientStreaming,
  createServer,
  defineService,
  messageType,
  oneway,
  type Server,
  type ServerOptions,
  serverStreaming,
  unary,
} from "../src/index.ts";

export interface EchoRequest {
  text: string;
  delayMs?: number;
}
export interface EchoReply {
  text: string;
  headers?: Record<string, string>;
  remainingMs?: number | null;
}

/** A service with every method kind, shared by the end-to-end tests. */
export const Echo = defineService("test.v1.Echo", {
  echo: unary(messageType<EchoRequest>(), messageType<EchoReply>()),
  count: serverStreaming(
    messageType<{ n: number; size?: number }>(),
    messageType<{ i: number; pad?: string }>(),
  ),
  sum: clientStreaming(messageType<{ n: number }>(), messageType<{ total: number; count: number }>()),
  chat: bidiStreaming(messageType<{ text: string }>(), messageType<{ text: string }>()),
  notify: oneway(messageType<{ event: string }>()),
});

/** Starts a server on a free loopback port; returns it and its address. */
export async function startServer(
  register: (server: Server) => void,
  options: ServerOptions = {},
): Promise<{ server: Server; address: string }> {
  const server = createServer({ onError: () => {}, ...options });
  register(server);
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
  return { server, address: `127.0.0.1:${port}` };
}

/** Echo's handlers at their simplest: `echo` answers with the request's text. */
export const echoHandlers = {
  echo: (req: EchoRequest): EchoReply => ({ text: req.text }),
  count: async function* () {},
  sum: async () => ({ total: 0, count: 0 }),
  chat: async function* () {},
  notify: () => {},
};
