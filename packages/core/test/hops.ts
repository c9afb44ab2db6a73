/**
 * A chain of separate servers, client → A → B → C, each calling the next from inside its handler
 * with a plain client and no explicit options: what reaches C is what the framework propagated.
 */
import {
  type CallOptions,
  type Client,
  createClient,
  createTcpTransport,
  defineService,
  type HandlerContext,
  messageType,
  type Server,
  type ServerOptions,
  type Transport,
  unary,
} from "../src/index.ts";
import { startServer } from "./fixtures.ts";

/** What one hop saw of its inbound call. */
export interface HopView {
  name: string;
  remainingMs: number | null;
  headers: Record<string, string>;
}

export const Hop = defineService("test.v1.Hop", {
  hop: unary(messageType<Record<string, never>>(), messageType<{ seen: HopView[] }>()),
});

export interface HopChain {
  /** A client of the first hop. */
  client: Client<typeof Hop>;
  servers: Server[];
  transports: Transport[];
  close(): Promise<void>;
}

export interface HopOptions {
  /** Runs inside each hop's handler before it calls the next (or returns, for the last). */
  onHop?: (name: string, ctx: HandlerContext) => void | Promise<void>;
  /** Options of the hop's own outgoing call. */
  callOptions?: (name: string) => CallOptions | undefined;
  /** Options of each hop's server. */
  serverOptions?: (name: string) => ServerOptions;
}

/** Starts hops `names` (last first, so each knows its successor's address) and a client of the first. */
export async function startHops(names: readonly string[], options: HopOptions = {}): Promise<HopChain> {
  const servers: Server[] = [];
  const transports: Transport[] = [];
  let next: Client<typeof Hop> | undefined;
  for (const name of [...names].reverse()) {
    const downstream = next;
    const { server, address } = await startServer(
      (s) =>
        s.register(Hop, {
          hop: async (_req, ctx) => {
            const me: HopView = {
              name,
              remainingMs: ctx.timeRemaining() ?? null,
              headers: ctx.requestHeaders.toJSON(),
            };
            await options.onHop?.(name, ctx);
            if (downstream === undefined) return { seen: [me] };
            const rest = await downstream.hop({}, options.callOptions?.(name));
            return { seen: [me, ...rest.seen] };
          },
        }),
      options.serverOptions?.(name) ?? {},
    );
    servers.unshift(server);
    const transport = createTcpTransport({ address });
    transports.unshift(transport);
    next = createClient(Hop, transport);
  }
  return {
    client: next!,
    servers,
    transports,
    async close() {
      await Promise.all(transports.map((t) => t.close()));
      await Promise.all(servers.map((s) => s.shutdown({ timeoutMs: 1000 })));
    },
  };
}
