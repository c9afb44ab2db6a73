import type { Broker } from "@weft/messaging";

/**
 * A connection to a broker shared by a test's parties: everything goes to `broker`, except `close`,
 * which leaves it open for the others (the test closes it once, at its end). What a suite's factory
 * returns for an in-process broker such as `memoryBroker()`.
 */
export function brokerView(broker: Broker): Broker {
  return {
    name: broker.name,
    features: broker.features,
    publish: (envelope, options) => broker.publish(envelope, options),
    subscribe: (spec, sink) => broker.subscribe(spec, sink),
    openInbox: (handlers) => broker.openInbox(handlers),
    close: () => Promise.resolve(),
  };
}
