import { X509Certificate } from "node:crypto";
import { connect as netConnect, Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  Code,
  createClient,
  createTcpTransport,
  type Interceptor,
  type PeerIdentity,
  type Server,
  type ServerOptions,
  type TcpTransportOptions,
  type Transport,
  WeftError,
} from "../../src/index.ts";
import { deferred } from "../deferred.ts";
import { Echo, startServer } from "../fixtures.ts";
import { admitOnlyClient, generateTlsMaterial, type TlsMaterial } from "../tls-fixtures.ts";

let tls: TlsMaterial;
beforeAll(() => {
  tls = generateTlsMaterial();
});
afterAll(() => tls.cleanup());

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

async function tlsServer(serverTls: NonNullable<ServerOptions["tls"]>) {
  const { server, address } = await startServer(
    (s) =>
      s.register(Echo, {
        echo: (req) => ({ text: req.text }),
        count: async function* (req) {
          for (let i = 0; i < req.n; i++) yield { i };
        },
        sum: async () => ({ total: 0, count: 0 }),
        chat: async function* () {},
        notify: () => {},
      }),
    { tls: serverTls },
  );
  servers.push(server);
  return address;
}

function client(options: TcpTransportOptions) {
  const transport = createTcpTransport(options);
  transports.push(transport);
  return createClient(Echo, transport);
}

async function failure(p: Promise<unknown>): Promise<WeftError> {
  const e = await p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(WeftError);
  return e as WeftError;
}

describe("TLS", () => {
  it("serves unary and streaming calls to a client that trusts the CA (IP SAN)", async () => {
    const address = await tlsServer({ key: tls.server.key, cert: tls.server.cert });
    const c = client({ address, tls: { ca: tls.ca } });
    await expect(c.echo({ text: "secret" })).resolves.toEqual({ text: "secret" });
    const got: unknown[] = [];
    for await (const m of c.count({ n: 3 })) got.push(m);
    expect(got).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  it("verifies the host name against the DNS SAN", async () => {
    const address = await tlsServer({ key: tls.server.key, cert: tls.server.cert });
    const port = address.split(":")[1];
    const c = client({ address: `localhost:${port}`, tls: { ca: tls.ca } });
    await expect(c.echo({ text: "by name" })).resolves.toEqual({ text: "by name" });
  });

  it("refuses a server whose certificate the client does not trust, with UNAVAILABLE", async () => {
    const address = await tlsServer({ key: tls.server.key, cert: tls.server.cert });
    const e = await failure(client({ address, tls: {}, keepalive: false }).echo({ text: "x" }));
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe("CONNECTION_FAILED");
  });

  it("refuses a plaintext client", async () => {
    const address = await tlsServer({ key: tls.server.key, cert: tls.server.cert });
    const e = await failure(client({ address, keepalive: false }).echo({ text: "x" }, { timeoutMs: 5000 }));
    expect(e.code).toBe(Code.UNAVAILABLE);
  });

  it("shutdown cuts off a socket still in its TLS handshake at the timeout", async () => {
    // Node's TLS server gives a handshake 120 s; listener.close() waits for such sockets too
    const accepted = deferred();
    const keepalive = Socket.prototype.setKeepAlive;
    vi.spyOn(Socket.prototype, "setKeepAlive").mockImplementation(function (this: Socket, ...args) {
      accepted.resolve();
      return keepalive.apply(this, args);
    });
    const address = await tlsServer({ key: tls.server.key, cert: tls.server.cert });
    const server = servers.pop()!;
    const i = address.lastIndexOf(":");
    const silent = netConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
    silent.on("error", () => {});
    const silentClosed = new Promise<void>((resolve) => silent.once("close", () => resolve()));
    await accepted.promise; // the server has the socket; the client never sends a ClientHello
    await expect(server.shutdown({ timeoutMs: 100 })).resolves.toEqual({ cancelled: 0 });
    expect(server.state).toBe("stopped");
    await silentClosed;
  });

  describe("mutual TLS", () => {
    const mtls = () => ({
      key: tls.server.key,
      cert: tls.server.cert,
      ca: tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
    });

    it("accepts a client with a certificate signed by the CA", async () => {
      const address = await tlsServer(mtls());
      const c = client({ address, tls: { ca: tls.ca, key: tls.client.key, cert: tls.client.cert } });
      await expect(c.echo({ text: "mutual" })).resolves.toEqual({ text: "mutual" });
    });

    it("rejects a client without a certificate with UNAVAILABLE", async () => {
      const address = await tlsServer(mtls());
      const e = await failure(client({ address, tls: { ca: tls.ca }, keepalive: false }).echo({ text: "x" }));
      expect(e.code).toBe(Code.UNAVAILABLE);
    });

    it("rejects a client whose certificate the CA did not issue with UNAVAILABLE", async () => {
      const address = await tlsServer(mtls());
      const rogue = client({ address, tls: { ca: tls.ca, ...tls.rogue }, keepalive: false });
      expect((await failure(rogue.echo({ text: "x" }))).code).toBe(Code.UNAVAILABLE);
    });

    it("rejects a certificate issued for servers, not clients, with UNAVAILABLE", async () => {
      const address = await tlsServer(mtls());
      const wrongUse = client({ address, tls: { ca: tls.ca, ...tls.server }, keepalive: false });
      expect((await failure(wrongUse.echo({ text: "x" }))).code).toBe(Code.UNAVAILABLE);
    });
  });

  describe("handlers and interceptors see who is calling", () => {
    const onlyClient = admitOnlyClient();

    /** A TLS server whose echo handler records the identity it saw; `interceptors` run before it. */
    async function identityServer(
      serverTls: NonNullable<ServerOptions["tls"]>,
      interceptors: Interceptor[] = [],
    ) {
      const seen: Array<PeerIdentity | undefined> = [];
      const { server, address } = await startServer(
        (s) =>
          s.register(Echo, {
            echo: (req, ctx) => {
              seen.push(ctx.peerIdentity);
              return { text: req.text };
            },
            count: async function* (_req, ctx) {
              seen.push(ctx.peerIdentity);
              yield { i: 0 };
            },
            sum: async () => ({ total: 0, count: 0 }),
            chat: async function* () {},
            notify: () => {},
          }),
        { tls: serverTls, interceptors },
      );
      servers.push(server);
      return { address, seen };
    }

    const mtls = (extra: object = {}) => ({
      key: tls.server.key,
      cert: tls.server.cert,
      ca: tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
      ...extra,
    });

    it("the client certificate's names, fingerprint and DER, the same for every call on the connection", async () => {
      const { address, seen } = await identityServer(mtls());
      const c = client({ address, tls: { ca: tls.ca, key: tls.client.key, cert: tls.client.cert } });
      await c.echo({ text: "a" });
      for await (const _ of c.count({ n: 1 })) {
        // the stream's handler records it too
      }
      const x509 = new X509Certificate(tls.client.cert);
      const identity = seen[0]!;
      expect(identity).toEqual({
        commonName: "weft-test-client",
        subject: { CN: "weft-test-client" },
        subjectAltNames: ["URI:spiffe://weft.test/client", "DNS:client.weft.test"],
        issuer: { CN: "weft-test-ca" },
        fingerprint256: x509.fingerprint256,
        raw: new Uint8Array(x509.raw),
      });
      expect(seen[1]).toBe(identity); // read once per connection
    });

    it("an auth interceptor admits one client certificate and refuses another the same CA issued", async () => {
      const { address, seen } = await identityServer(mtls(), [onlyClient]);
      const admitted = client({ address, tls: { ca: tls.ca, ...tls.client } });
      await expect(admitted.echo({ text: "in" })).resolves.toEqual({ text: "in" });
      const refused = client({ address, tls: { ca: tls.ca, ...tls.other } });
      const e = await failure(refused.echo({ text: "out" }));
      expect(e.code).toBe(Code.PERMISSION_DENIED);
      expect(e.reason).toBe("NOT_ADMITTED");
      expect(e.message).toContain("weft-test-other may not call");
      expect(seen.map((i) => i?.commonName)).toEqual(["weft-test-client"]);
    });

    it("is undefined on cleartext, over TLS without a client certificate, and for one that did not verify", async () => {
      const plain = await startServer((s) =>
        s.register(Echo, {
          echo: (req, ctx) => ({ text: `${req.text}:${ctx.peerIdentity === undefined}` }),
          count: async function* () {},
          sum: async () => ({ total: 0, count: 0 }),
          chat: async function* () {},
          notify: () => {},
        }),
      );
      servers.push(plain.server);
      await expect(client({ address: plain.address }).echo({ text: "plain" })).resolves.toEqual({
        text: "plain:true",
      });

      const oneWay = await identityServer({ key: tls.server.key, cert: tls.server.cert });
      await client({ address: oneWay.address, tls: { ca: tls.ca, ...tls.client } }).echo({ text: "x" });
      expect(oneWay.seen).toEqual([undefined]); // the server never asked for a certificate

      // the server lets unverified certificates in: the rogue's names must not pass for an identity
      const lax = await identityServer(mtls({ rejectUnauthorized: false }), [onlyClient]);
      const rogue = client({ address: lax.address, tls: { ca: tls.ca, ...tls.rogue } });
      expect((await failure(rogue.echo({ text: "x" }))).code).toBe(Code.PERMISSION_DENIED);
      const anonymous = client({ address: lax.address, tls: { ca: tls.ca } });
      expect((await failure(anonymous.echo({ text: "x" }))).code).toBe(Code.PERMISSION_DENIED);
      const admitted = client({ address: lax.address, tls: { ca: tls.ca, ...tls.client } });
      await expect(admitted.echo({ text: "ok" })).resolves.toEqual({ text: "ok" });
    });
  });
});
