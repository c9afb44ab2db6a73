import type { PeerCertificate } from "node:tls";
import type { PeerIdentity } from "../interceptor/call.ts";

/** What `peerOf` reads of a socket: `node:net` sockets, TLS sockets and HTTP/2 session sockets have it. */
export interface PeerSocket {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/**
 * The remote address of `socket` as `host:port` (an IPv6 host in brackets, `[::1]:5000`), or
 * `undefined` when it is not known (a socket already closed, an in-memory pipe). What every front
 * end reports as a call's `peer`.
 */
export function peerOf(socket: PeerSocket | null | undefined): string | undefined {
  const host = socket?.remoteAddress;
  if (host === undefined) return undefined;
  const port = socket!.remotePort;
  const h = host.includes(":") ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

/** What `peerIdentityOf` reads of a socket: a `TLSSocket`, or an HTTP/2 session's socket over one. */
export interface PeerTlsSocket {
  readonly authorized?: boolean;
  getPeerCertificate?(detailed?: false): PeerCertificate | Record<string, never>;
}

/** Each socket's identity, worked out once for every call on it (`null`: none). */
const identities = new WeakMap<object, PeerIdentity | null>();

/**
 * The verified client certificate of a TLS socket as a `PeerIdentity`, or `undefined`: a cleartext
 * socket, a client that sent no certificate, or one that did not verify against the server's `ca`
 * (`authorized` is false, possible only with `rejectUnauthorized: false`). Read once per socket.
 * What every front end that terminates TLS passes to `openCall`.
 */
export function peerIdentityOf(socket: PeerTlsSocket | null | undefined): PeerIdentity | undefined {
  if (socket === null || socket === undefined || typeof socket.getPeerCertificate !== "function") {
    return undefined;
  }
  let identity = identities.get(socket);
  if (identity === undefined) {
    identity = socket.authorized === true ? toIdentity(socket.getPeerCertificate()) : null;
    identities.set(socket, identity);
  }
  return identity ?? undefined;
}

function toIdentity(cert: PeerCertificate | Record<string, never>): PeerIdentity | null {
  if (!("raw" in cert) || cert.raw === undefined) return null;
  const subject = distinguishedName(cert.subject);
  const cn = subject.CN;
  return Object.freeze({
    commonName: typeof cn === "string" ? cn : cn?.[cn.length - 1],
    subject,
    subjectAltNames: Object.freeze(splitAltNames(cert.subjectaltname)),
    issuer: distinguishedName(cert.issuer),
    fingerprint256: cert.fingerprint256,
    raw: new Uint8Array(cert.raw),
  });
}

function distinguishedName(name: object | undefined): Readonly<Record<string, string | readonly string[]>> {
  const out: Record<string, string | readonly string[]> = {};
  if (name !== undefined) {
    for (const [k, v] of Object.entries(name)) out[k] = Array.isArray(v) ? Object.freeze([...v]) : String(v);
  }
  return Object.freeze(out);
}

/**
 * Node's `subjectaltname` (`DNS:a, URI:"https://x/a\u002cb", IP Address:10.0.0.7`) as a list of
 * `type:value`: split at `, ` outside quotes; a quoted value (one with characters Node escapes) is a
 * JSON string, unquoted here.
 */
export function splitAltNames(names: string | undefined): string[] {
  const out: string[] = [];
  if (names === undefined || names === "") return out;
  let start = 0;
  let quoted = false;
  for (let i = 0; i <= names.length; i++) {
    const c = names[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (i === names.length || (c === "," && names[i + 1] === " ")) {
      out.push(unquote(names.slice(start, i)));
      start = i + 2;
      i++;
    }
  }
  return out;
}

function unquote(entry: string): string {
  const q = entry.indexOf('"');
  if (q < 0 || !entry.endsWith('"')) return entry;
  try {
    return entry.slice(0, q) + (JSON.parse(entry.slice(q)) as string);
  } catch {
    return entry;
  }
}
