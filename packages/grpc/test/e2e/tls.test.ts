import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConnectError,
  type Transport as ConnectTransport,
  createClient as createConnectClient,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Code, createClient, createServer, type WeftError } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { admitOnlyClient, generateTlsMaterial } from "../../../core/test/tls-fixtures.ts";
import { createGrpcTransport, createTransport, type GrpcListener, listenGrpc } from "../../src/index.ts";
import {
  type AnyClient,
  CatalogService,
  catalogImpl,
  loadCatalogPackage,
  newObserved,
  unaryCall,
} from "./fixtures.ts";

/** A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI; nothing is committed. */
function makeCertificates(): { ca: Buffer; key: Buffer; cert: Buffer; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "weft-grpc-tls-"));
  const openssl = (args: string) => execFileSync("openssl", args.split(" "), { cwd: dir, stdio: "pipe" });
  openssl("ecparam -name prime256v1 -genkey -noout -out ca.key");
  openssl("req -x509 -new -key ca.key -sha256 -days 1 -subj /CN=weft-grpc-test-ca -out ca.crt");
  openssl("ecparam -name prime256v1 -genkey -noout -out server.key");
  openssl("req -new -key server.key -subj /CN=weft-grpc-test -out server.csr");
  writeFileSync(
    join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -sha256 -extfile server.ext -out server.crt",
  );
  const read = (f: string) => readFileSync(join(dir, f));
  return {
    ca: read("ca.crt"),
    key: read("server.key"),
    cert: read("server.crt"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

describe("TLS: HTTP/2 for gRPC and, by ALPN, HTTP/1.1 for Connect on the same port", () => {
  const certs = makeCertificates();
  const server = createServer({ onError: () => {} });
  let listener: GrpcListener;

  beforeAll(async () => {
    server.register(CatalogService, catalogImpl(newObserved()));
    listener = await listenGrpc(server, { tls: { key: certs.key, cert: certs.cert } });
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await listener.close();
    certs.cleanup();
  });

  it("grpc-js with TLS credentials", async () => {
    const pkg = loadCatalogPackage() as AnyClient;
    const client = new pkg.catalog.v1.Catalog(
      `127.0.0.1:${listener.port}`,
      grpc.credentials.createSsl(certs.ca),
    );
    const { response } = await unaryCall<{ name: string }>(client, "Lookup", { sku: "T" });
    expect(response.name).toBe("item T");
    client.close();
  });

  it("the Weft gRPC transport, by options and by grpcs:// target", async () => {
    for (const transport of [
      createGrpcTransport({ address: `127.0.0.1:${listener.port}`, tls: { ca: certs.ca } }),
      createTransport(`grpcs://127.0.0.1:${listener.port}`, { tls: { ca: certs.ca } }),
    ]) {
      expect((await createClient(CatalogService, transport).lookup({ sku: "W" })).name).toBe("item W");
      await transport.close();
    }
  });

  it("Connect over HTTP/1.1 with TLS", async () => {
    const transport = createConnectTransport({
      baseUrl: `https://127.0.0.1:${listener.port}`,
      httpVersion: "1.1",
      nodeOptions: { ca: certs.ca },
    });
    expect((await createConnectClient(Catalog, transport).lookup({ sku: "C" })).name).toBe("item C");
  });
});

describe("mutual TLS: handlers and interceptors see who is calling, over gRPC, Connect and gRPC-web", () => {
  const tls = generateTlsMaterial();
  const callers: Array<string | undefined> = [];
  const onlyClient = admitOnlyClient(callers);
  const server = createServer({ onError: () => {}, interceptors: [onlyClient] });
  let listener: GrpcListener;
  let address: string;

  beforeAll(async () => {
    server.register(CatalogService, catalogImpl(newObserved()));
    listener = await listenGrpc(server, {
      tls: { key: tls.server.key, cert: tls.server.cert, ca: tls.ca, requestCert: true },
    });
    address = `127.0.0.1:${listener.port}`;
  });
  afterAll(async () => {
    await server.shutdown({ timeoutMs: 1000 });
    await listener.close();
    tls.cleanup();
  });

  /** Looks up a SKU as `who` with each protocol; the outcome per protocol, `ok` or the gRPC code. */
  async function lookups(who: { key: Buffer; cert: Buffer }): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const transport = createGrpcTransport({ address, tls: { ca: tls.ca, ...who } });
    try {
      await createClient(CatalogService, transport).lookup({ sku: "G" });
      out.grpc = "ok";
    } catch (e) {
      out.grpc = String((e as WeftError).code);
    } finally {
      await transport.close();
    }
    const nodeOptions = { ca: tls.ca, ...who };
    const connect: Record<string, ConnectTransport> = {
      connectHttp1: createConnectTransport({
        baseUrl: `https://${address}`,
        httpVersion: "1.1",
        nodeOptions,
      }),
      connectHttp2: createConnectTransport({ baseUrl: `https://${address}`, httpVersion: "2", nodeOptions }),
      grpcWeb: createGrpcWebTransport({ baseUrl: `https://${address}`, httpVersion: "1.1", nodeOptions }),
    };
    for (const [name, t] of Object.entries(connect)) {
      try {
        await createConnectClient(Catalog, t).lookup({ sku: "C" });
        out[name] = "ok";
      } catch (e) {
        out[name] = String(ConnectError.from(e).code);
      }
    }
    return out;
  }

  it("an auth interceptor admits one client certificate and refuses another the same CA issued", async () => {
    callers.length = 0;
    expect(await lookups(tls.client)).toEqual({
      grpc: "ok",
      connectHttp1: "ok",
      connectHttp2: "ok",
      grpcWeb: "ok",
    });
    const denied = String(Code.PERMISSION_DENIED);
    expect(await lookups(tls.other)).toEqual({
      grpc: denied,
      connectHttp1: denied,
      connectHttp2: denied,
      grpcWeb: denied,
    });
    expect(callers).toEqual([...Array(4).fill("weft-test-client"), ...Array(4).fill("weft-test-other")]);
  });

  it("grpc-js with a client certificate: the handler's context has its fingerprint; none without one", async () => {
    const seen: string[] = [];
    const s = createServer({ onError: () => {} });
    s.register(CatalogService, {
      ...catalogImpl(newObserved()),
      lookup: (req, ctx) => {
        seen.push(ctx.peerIdentity?.fingerprint256 ?? "none");
        return { sku: req.sku, name: `item ${req.sku}` } as never;
      },
    });
    const l = await listenGrpc(s, {
      tls: {
        key: tls.server.key,
        cert: tls.server.cert,
        ca: tls.ca,
        requestCert: true,
        rejectUnauthorized: false,
      },
    });
    try {
      const pkg = loadCatalogPackage() as AnyClient;
      const c = new pkg.catalog.v1.Catalog(
        `127.0.0.1:${l.port}`,
        grpc.credentials.createSsl(tls.ca, tls.client.key, tls.client.cert),
      );
      await unaryCall(c, "Lookup", { sku: "J" });
      c.close();
      const anonymous = new pkg.catalog.v1.Catalog(`127.0.0.1:${l.port}`, grpc.credentials.createSsl(tls.ca));
      await unaryCall(anonymous, "Lookup", { sku: "K" });
      anonymous.close();
    } finally {
      await s.shutdown({ timeoutMs: 1000 });
      await l.close();
    }
    expect(seen).toEqual([new X509Certificate(tls.client.cert).fingerprint256, "none"]);
  });
});
