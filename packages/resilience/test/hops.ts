/**
 * A chain of servers over real TCP, client → A → B → C: each hop's handler calls the next with a
 * client built by `clientOf` (its interceptors are the policies under test); the last hop runs `last`.
 */
import {
  type Client,
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  type HandlerContext,
  type Interceptor,
  messageType,
  type Server,
  type ServerOptions,
  type Transport,
  unary,
} from "@weft/core";

export const Hop = defineService("test.v1.Hop", {
  hop: unary(messageType<{ n: number }>(), messageType<{ path: string[] }>()),
});

export interface Chain {
  /** A client of the first hop, with `interceptors`. */
  client: Client<typeof Hop>;
  close(): Promise<void>;
}

export interface ChainOptions {
  /** Names of the hops, first to last. */
  names: readonly string[];
  /** The last hop's handler. */
  last: (request: { n: number }, ctx: HandlerContext) => Promise<{ path: string[] }> | { path: string[] };
  /** Interceptors of every client: the test's and each hop's. */
  interceptors?: () => Interceptor[];
  /** Options of hop `name`'s server. */
  server?: (name: string) => ServerOptions;
}

export async function startChain(options: ChainOptions): Promise<Chain> {
  const servers: Server[] = [];
  const transports: Transport[] = [];
  let next: Client<typeof Hop> | undefined;
  const connect = (address: string): Client<typeof Hop> => {
    const transport = createTcpTransport({ address });
    transports.push(transport);
    return createClient(Hop, transport, { interceptors: options.interceptors?.() ?? [] });
  };
  for (const name of [...options.names].reverse()) {
    const downstream = next;
    const server = createServer({ onError: () => {}, ...options.server?.(name) });
    server.register(Hop, {
      hop: async (request, ctx) => {
        if (downstream === undefined) return options.last(request, ctx);
        const reply = await downstream.hop(request);
        return { path: [name, ...reply.path] };
      },
    });
    const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
    servers.push(server);
    next = connect(`127.0.0.1:${port}`);
  }
  return {
    client: next!,
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      await Promise.all(servers.map((s) => s.shutdown({ timeoutMs: 1_000 })));
    },
  };
}
