import { afterEach, describe, expect, it } from "vitest";
import {
  Code,
  codeName,
  createClient,
  createTcpTransport,
  defineService,
  messageType,
  oneway,
  type Server,
  type ServerOptions,
  type Transport,
  unary,
  WeftError,
} from "../../src/index.ts";
import { Echo, startServer } from "../fixtures.ts";

/** Same wire name as Echo, plus methods the server does not implement. */
const EchoPlus = defineService("test.v1.Echo", {
  echo: unary(messageType<{ text: string }>(), messageType<{ text: string }>()),
  shout: unary(messageType<{ text: string }>(), messageType<{ text: string }>()),
});
const Missing = defineService("test.v1.Missing", {
  echo: unary(messageType<{ text: string }>(), messageType<{ text: string }>()),
});

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** Starts an Echo server whose `echo` handler is `echo`, and a client of `service` to it. */
async function serve<S extends typeof Echo | typeof EchoPlus | typeof Missing>(
  echo: (req: { text: string }) => unknown,
  service: S,
  options: ServerOptions = {},
) {
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: async (req) => (await echo(req)) as { text: string },
        count: async function* () {},
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      }),
    options,
  );
  servers.push(server);
  const transport = createTcpTransport({ address });
  transports.push(transport);
  return createClient(service, transport);
}

async function rejection(p: Promise<unknown>): Promise<WeftError> {
  const e = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(WeftError);
  return e as WeftError;
}

describe("errors over TCP", () => {
  it("answers an unknown service with UNIMPLEMENTED/UNKNOWN_METHOD", async () => {
    const client = await serve((r) => r, Missing);
    const e = await rejection(client.echo({ text: "x" }));
    expect(e.code).toBe(Code.UNIMPLEMENTED);
    expect(e.reason).toBe("UNKNOWN_METHOD");
    expect(e.rawMessage).toContain("/test.v1.Missing/echo");
  });

  it("answers an unknown method of a known service with UNIMPLEMENTED", async () => {
    const client = await serve((r) => r, EchoPlus);
    const e = await rejection(client.shout({ text: "x" }));
    expect(e.code).toBe(Code.UNIMPLEMENTED);
    expect(e.reason).toBe("UNKNOWN_METHOD");
    // the connection is still good for the methods that exist
    await expect(client.echo({ text: "still here" })).resolves.toEqual({ text: "still here" });
  });

  it("turns a plain Error into INTERNAL without leaking its message or stack", async () => {
    const reported: unknown[] = [];
    const client = await serve(
      () => {
        throw new Error("db password is hunter2");
      },
      Echo,
      { onError: (error) => reported.push(error) },
    );
    const e = await rejection(client.echo({ text: "x" }));
    expect(e.code).toBe(Code.INTERNAL);
    expect(e.reason).toBe("HANDLER_ERROR");
    expect(e.rawMessage).toBe("internal error");
    expect(e.details).toEqual([]);
    expect(JSON.stringify({ m: e.message, d: e.details, md: e.metadata })).not.toContain("hunter2");
    // the server's own log gets the original
    expect(reported).toHaveLength(1);
    expect((reported[0] as Error).message).toBe("db password is hunter2");
  });

  it("with exposeInternalErrors, sends the message and a weft.DebugInfo detail with the stack", async () => {
    const client = await serve(
      () => {
        throw new Error("boom in handler");
      },
      Echo,
      { exposeInternalErrors: true },
    );
    const e = await rejection(client.echo({ text: "x" }));
    expect(e.code).toBe(Code.INTERNAL);
    expect(e.rawMessage).toBe("boom in handler");
    expect(e.details).toHaveLength(1);
    const detail = e.details[0]!;
    expect(detail.type).toBe("weft.DebugInfo");
    const stack = (detail.value as { stack: string }).stack;
    expect(stack).toContain("boom in handler");
    expect(stack).toContain("errors.test.ts");
  });

  it("carries a handler's WeftError across with code, reason, message, metadata and details intact", async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const client = await serve(() => {
      throw new WeftError(Code.FAILED_PRECONDITION, "order 42 is already shipped", {
        reason: "ORDER_SHIPPED",
        metadata: { "order-id": "42", "retry-after-ms": "0" },
        details: [
          { type: "shop.v1.OrderState", value: { state: "shipped", at: [2024, 5, 1], ok: true, none: null } },
          { type: "google.rpc.RetryInfo", value: bytes },
        ],
      });
    }, Echo);
    const e = await rejection(client.echo({ text: "x" }));
    expect(e.code).toBe(Code.FAILED_PRECONDITION);
    expect(e.reason).toBe("ORDER_SHIPPED");
    expect(e.rawMessage).toBe("order 42 is already shipped");
    expect(e.message).toBe("[FAILED_PRECONDITION] order 42 is already shipped");
    expect(e.metadata.get("order-id")).toBe("42");
    expect(e.metadata.get("retry-after-ms")).toBe("0");
    expect(e.details).toHaveLength(2);
    expect(e.details[0]).toEqual({
      type: "shop.v1.OrderState",
      value: { state: "shipped", at: [2024, 5, 1], ok: true, none: null },
    });
    expect(e.details[1]!.type).toBe("google.rpc.RetryInfo");
    expect(e.details[1]!.value).toBeInstanceOf(Uint8Array);
    expect([...(e.details[1]!.value as Uint8Array)]).toEqual([...bytes]);
  });

  const codes = Object.values(Code).filter((c) => c !== Code.OK);
  it.each(codes.map((c) => [codeName(c), c] as const))("round-trips code %s", async (name, code) => {
    const client = await serve(() => {
      throw new WeftError(code, `thrown as ${name}`, { reason: `R_${name}` });
    }, Echo);
    const e = await rejection(client.echo({ text: "x" }));
    expect(e.code).toBe(code);
    expect(e.reason).toBe(`R_${name}`);
    expect(e.rawMessage).toBe(`thrown as ${name}`);
  });

  it("reports a handler error of a one-way call to onError and nowhere else", async () => {
    const reported: Array<[unknown, string | undefined]> = [];
    let resolveReported!: () => void;
    const wasReported = new Promise<void>((r) => {
      resolveReported = r;
    });
    const Oneway = defineService("test.v1.Echo", { notify: oneway(messageType<{ event: string }>()) });
    const { server, address } = await startServer(
      (s) =>
        s.register(Echo, {
          echo: (r) => r,
          count: async function* () {},
          sum: async () => ({ total: 0, count: 0 }),
          chat: async function* () {},
          notify: () => {
            throw new Error("one-way failure");
          },
        }),
      {
        onError: (error, path) => {
          reported.push([error, path]);
          resolveReported();
        },
      },
    );
    servers.push(server);
    const transport = createTcpTransport({ address });
    transports.push(transport);
    await createClient(Oneway, transport).notify({ event: "e" });
    await wasReported;
    expect(reported).toHaveLength(1);
    expect((reported[0]![0] as Error).message).toBe("one-way failure");
    expect(reported[0]![1]).toBe("/test.v1.Echo/notify");
  });
});
