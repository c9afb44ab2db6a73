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
