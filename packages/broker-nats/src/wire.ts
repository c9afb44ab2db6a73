/*
 * Envelopes on NATS: the envelope's fields travel as NATS headers through the one mapping of
 * `@weft/messaging` (`toHeaders`, and `fromHeaders`/`envelopeOf` back), so a raw NATS client reads
 * `weft-id`, `weft-kind`, `content-type`… as they are, and a message it published without them is
 * still consumed.
 *
 * The header block is written and read here rather than through the client's `MsgHdrs` methods:
 * those check and look up every name on each `append` and split the whole block on each read, about
 * 30% of a request's CPU at 64 requests in flight. The bytes are the same (`NATS/1.0`, then
 * `name: value` lines, then an empty line), so either side may be a raw client.
 */

import type { JsMsg } from "@nats-io/jetstream";
import { type Msg, type MsgHdrs, MsgHdrsImpl } from "@nats-io/transport-node";
import { ConfigError } from "@weft/core";
import { type Envelope, toHeaders } from "@weft/messaging";

/**
 * The envelope's fields and application headers as NATS headers. Throws a `ConfigError` for a header
 * NATS cannot carry: a name outside printable ASCII or with a colon, a value with CR or LF.
 */
export function headersOf(envelope: Envelope): MsgHdrs {
  const h = new EnvelopeHeaders();
  const record = toHeaders(envelope);
  for (const name in record) {
    const value = record[name]!;
    if (!HEADER_NAME.test(name)) throw new ConfigError("headers", "names NATS can carry", name);
    if (LINE_BREAK.test(value))
      throw new ConfigError("headers", `a value without CR or LF for ${name}`, value);
    // the client trims values as it writes them; so does this, so both write the same bytes
    h.headers.set(name, [value.trim()]);
  }
  return h;
}

/** A NATS header name: printable ASCII without the colon. */
const HEADER_NAME = /^[!-9;-~]+$/;
const LINE_BREAK = /[\r\n]/;

/**
 * Headers that encode themselves in one pass over their map. It stays a `MsgHdrsImpl`: JetStream's
 * publish adds `Nats-Msg-Id` to it, and the block is written from the map, so that header is in it.
 */
class EnvelopeHeaders extends MsgHdrsImpl {
  override encode(): Uint8Array {
    if (this.headers.size === 0 || this.code !== 0) return super.encode();
    let block = "NATS/1.0\r\n";
    for (const [name, values] of this.headers) for (const value of values) block += `${name}: ${value}\r\n`;
    return Buffer.from(`${block}\r\n`);
  }
}

/**
 * The `Nats-Msg-Id` JetStream deduplicates by: the envelope's id within its destination, so the
 * same message published again to the same destination is stored once, while a copy of it sent on
 * elsewhere (a dead letter, whose stream may be the same one) is a message of its own.
 */
export function dedupIdOf(envelope: Envelope): string {
  return `${envelope.destination}:${envelope.id}`;
}

/** The header JetStream's publish dedup uses: the broker's bookkeeping, not an application header. */
const MSG_ID_HEADER = "nats-msg-id";

/**
 * A received message's NATS headers as name/value pairs (the last value of a repeated one), as an
 * array: `envelopeOf` reads them twice when they do not parse.
 */
export function entriesOf(h: MsgHdrs | undefined): (readonly [string, string])[] {
  const entries: (readonly [string, string])[] = [];
  if (h === undefined) return entries;
  for (const [name, values] of h) {
    if (name.toLowerCase() === MSG_ID_HEADER) continue;
    const last = values[values.length - 1];
    if (last !== undefined) entries.push([name, last]);
  }
  return entries;
}

/** A NATS message's header block as Weft reads it. */
export interface WireHeaders {
  /** The status on the block's first line (`NATS/1.0 503` → 503); 0 for none. */
  readonly status: number;
  /** Name/value pairs, one per header line, `Nats-Msg-Id` left out. */
  readonly entries: (readonly [string, string])[];
}

const NO_HEADERS: WireHeaders = { status: 0, entries: [] };
const utf8 = new TextDecoder();

/**
 * A NATS message's headers (core, or JetStream's wrapping a core one), read from its bytes in one pass when the client exposes them (it
 * keeps them as `_rdata` and the header length as `_msg.hdr`), else through `msg.headers`. A block
 * with a status line (a 503 "no responders", a 408) takes the client's own parser, which knows those.
 * A repeated name gives an entry per line, in order, so its last value wins, as with `entriesOf`.
 */
export function headersOfMsg(msg: Msg | JsMsg): WireHeaders {
  // a JetStream message wraps the core one it arrived as
  const raw = ("msg" in msg ? msg.msg : msg) as Partial<RawMsg>;
  const length = raw._msg?.hdr;
  if (raw._rdata instanceof Uint8Array && typeof length === "number") {
    if (length <= 0) return NO_HEADERS;
    const block = utf8.decode(raw._rdata.subarray(0, length));
    if (block.startsWith(PLAIN_FIRST_LINE)) return { status: 0, entries: parseBlock(block) };
  }
  const h = msg.headers;
  return h === undefined ? NO_HEADERS : { status: h.code, entries: entriesOf(h) };
}

/** What `MsgImpl` keeps of a received message: its bytes, headers first, and the header length. */
interface RawMsg {
  readonly _rdata: Uint8Array;
  readonly _msg: { readonly hdr: number };
}

const PLAIN_FIRST_LINE = "NATS/1.0\r\n";

/** The `name: value` lines after the first; a line without a colon is skipped, as the client does. */
function parseBlock(block: string): (readonly [string, string])[] {
  const entries: (readonly [string, string])[] = [];
  let at = PLAIN_FIRST_LINE.length;
  while (at < block.length) {
    let end = block.indexOf("\r\n", at);
    if (end === -1) end = block.length;
    const colon = block.indexOf(":", at);
    if (colon > at && colon < end) {
      const name = block.slice(at, colon);
      if (name.toLowerCase() !== MSG_ID_HEADER) entries.push([name, block.slice(colon + 1, end).trim()]);
    }
    at = end + 2;
  }
  return entries;
}
