/*
 * The reply inbox of both NATS brokers, over core NATS (replies are never stored): ONE subscription
 * to `_INBOX.<id>.>` per messenger, and `address(correlationId)` = `_INBOX.<id>.<correlationId>`. A
 * request published with that address as its NATS reply subject to a subject nobody subscribes to is
 * answered by the server itself with a 503 status message on the address, which names the request.
 */

import { createInbox, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { emit } from "@weft/core/internal";
import { type Envelope, fromHeaders, type Inbox, type InboxHandlers } from "@weft/messaging";
import { brokerUnavailable, type ConnectionSettings } from "./connection.ts";
import { headersOfMsg } from "./wire.ts";

const NO_RESPONDERS = 503;

/** Opens one messenger's inbox; resolves once the server has the subscription. */
export async function openNatsInbox(
  broker: string,
  nc: NatsConnection,
  settings: ConnectionSettings,
  handlers: InboxHandlers,
  onClose: (inbox: Inbox) => void,
): Promise<Inbox> {
  const prefix = `${createInbox()}.`;
  const receive = (msg: Msg): void => {
    const correlationId = msg.subject.slice(prefix.length);
    const { status, entries } = headersOfMsg(msg);
    if (status === NO_RESPONDERS && msg.data.length === 0) {
      handlers.onNoResponders(correlationId);
      return;
    }
    let envelope: Envelope;
    try {
      envelope = fromHeaders(msg.subject, entries, msg.data);
    } catch (error) {
      // a reply has nowhere to be dead-lettered: the request times out
      settings.logger.warn({ err: error, broker }, "dropped a reply with malformed weft headers");
      if (settings.telemetry !== undefined)
        emit(settings.telemetry, "broker.dropped", { broker, destination: msg.subject, why: "malformed" });
      return;
    }
    // a raw NATS responder (`msg.respond`) sends no weft headers: its reply subject names the request
    const reply: Envelope = envelope.correlationId === undefined ? { ...envelope, correlationId } : envelope;
    handlers.onReply(reply);
  };
  const sub = nc.subscribe(`${prefix}>`, {
    callback: (error, msg) => {
      if (error === null) receive(msg);
    },
  });
  try {
    await nc.flush();
  } catch (error) {
    sub.unsubscribe();
    throw brokerUnavailable(broker, "open a reply inbox", error);
  }
  let closed = false;
  const inbox: Inbox = {
    address: (correlationId) => prefix + correlationId,
    close: async () => {
      if (closed) return;
      closed = true;
      onClose(inbox);
      if (!sub.isClosed()) sub.unsubscribe();
    },
  };
  return inbox;
}
