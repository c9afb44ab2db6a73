import { type Envelope, newMessageId } from "@weft/messaging";

/**
 * An envelope for a broker's own tests: a new id, kind `event`, published now, a small JSON body;
 * `fields` overrides any of it.
 */
export function testEnvelope(destination: string, fields: Partial<Envelope> = {}): Envelope {
  return {
    id: newMessageId(),
    kind: "event",
    destination,
    publishedAt: Date.now(),
    contentType: "application/json",
    headers: {},
    body: new TextEncoder().encode(JSON.stringify({ n: 1 })),
    ...fields,
  };
}
