import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { createClient, createServer } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
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
