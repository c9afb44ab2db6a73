/**
 * Throwaway TLS material for tests, made with the `openssl` CLI: a CA, a server certificate for
 * `127.0.0.1` and `localhost` signed by it, two client certificates signed by it (for mTLS), and a
 * self-signed client certificate it never issued. Nothing is committed; every run makes fresh keys
 * in a temporary directory.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, type Interceptor, WeftError } from "../src/index.ts";

export interface KeyPair {
  key: Buffer;
  cert: Buffer;
}

export interface TlsMaterial {
  /** PEM of the CA certificate: what both sides trust. */
  ca: Buffer;
  /** For `127.0.0.1` and `localhost`, server auth only. */
  server: KeyPair;
  /** Issued by the CA for client auth: `CN=weft-test-client`, SANs `URI:spiffe://weft.test/client`, `DNS:client.weft.test`. */
  client: KeyPair;
  /** Another client the CA issued (`CN=weft-test-other`, `URI:spiffe://weft.test/other`): valid, but not `client`. */
  other: KeyPair;
  /** A self-signed client certificate the CA never issued: mTLS servers must refuse it. */
  rogue: KeyPair;
  /** Removes the temporary directory. */
  cleanup(): void;
}

/** Generates the CA and the certificates (EC P-256, valid one day). Takes ~100 ms. */
export function generateTlsMaterial(): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), "weft-tls-"));
  // every argument is space-free, so a command reads as one line; files are relative to `dir`
  const openssl = (command: string) =>
    execFileSync("openssl", command.split(" "), { cwd: dir, stdio: "pipe" });
  const read = (name: string) => readFileSync(join(dir, name));
  const newKey = (name: string) => openssl(`ecparam -name prime256v1 -genkey -noout -out ${name}.key`);

  newKey("ca");
  openssl("req -x509 -new -key ca.key -sha256 -days 1 -subj /CN=weft-test-ca -out ca.crt");

  const issue = (name: string, extensions: string[]): KeyPair => {
    newKey(name);
    openssl(`req -new -key ${name}.key -subj /CN=weft-test-${name} -out ${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), `${extensions.join("\n")}\n`);
    openssl(
      `x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -sha256 -extfile ${name}.ext -out ${name}.crt`,
    );
    return { key: read(`${name}.key`), cert: read(`${name}.crt`) };
  };
  const server = issue("server", [
    "basicConstraints=CA:FALSE",
    "keyUsage=digitalSignature",
    "extendedKeyUsage=serverAuth",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  const client = issue("client", [
    "basicConstraints=CA:FALSE",
    "keyUsage=digitalSignature",
    "extendedKeyUsage=clientAuth",
    "subjectAltName=URI:spiffe://weft.test/client,DNS:client.weft.test",
  ]);
  const other = issue("other", [
    "basicConstraints=CA:FALSE",
    "keyUsage=digitalSignature",
    "extendedKeyUsage=clientAuth",
    "subjectAltName=URI:spiffe://weft.test/other",
  ]);

  newKey("rogue");
  openssl("req -x509 -new -key rogue.key -sha256 -days 1 -subj /CN=weft-test-client -out rogue.crt");

  return {
    ca: read("ca.crt"),
    server,
    client,
    other,
    rogue: { key: read("rogue.key"), cert: read("rogue.crt") },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * An auth interceptor for the mTLS tests: records each caller's common name in `callers`, then
 * admits only calls whose verified certificate has the SAN `URI:spiffe://weft.test/client` (the
 * `client` pair), refusing the rest with `PERMISSION_DENIED`, reason `NOT_ADMITTED`.
 */
export function admitOnlyClient(callers: Array<string | undefined> = []): Interceptor {
  return (next) => (call) => {
    const identity = call.peerIdentity;
    callers.push(identity?.commonName);
    if (!identity?.subjectAltNames.includes("URI:spiffe://weft.test/client")) {
      throw new WeftError(Code.PERMISSION_DENIED, `${identity?.commonName ?? "anonymous"} may not call`, {
        reason: "NOT_ADMITTED",
      });
    }
    return next(call);
  };
}
