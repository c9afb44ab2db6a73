/**
 * @weft/messaging: one broker abstraction for every backend, the interaction styles on top of it,
 * and the in-process (`memory`) and brokerless (`direct`) brokers. See `docs/messaging.md`.
 */
export type {
  Destination,
  DestinationOptions,
  DrainResult,
  Gathered,
  GatherOptions,
  InterceptedMessage,
  MessageHandler,
  MessageInterceptor,
  MessageStep,
  MessageStream,
  Messenger,
  MessengerOptions,
  PublishOptions,
  ReceivedMessage,
  Reply,
  ReplyOptions,
  RequestOptions,
  SubscribeOptions,
  Subscription,
} from "./api.ts";
export {
  type Broker,
  type BrokerFeatures,
  type BrokerSubscription,
  type BrowsedMessage,
  type BrowseOptions,
  DEAD_LETTER_GROUP,
  type Delivery,
  type DeliverySink,
  type Inbox,
  type InboxHandlers,
  type PublishOptions as BrokerPublishOptions,
  partitionDestination,
  type SubscribeSpec,
} from "./broker.ts";
export {
  type BrokerScheme,
  type BrokerSchemes,
  type BrokerUrl,
  BUILT_IN_BROKER_SCHEMES,
  memoryScheme,
  openBroker,
  parseBrokerUrl,
  redactBrokerUrl,
} from "./broker-url.ts";
export {
  type ListDeadLettersOptions,
  type ListedDeadLetter,
  listDeadLetters,
  type ReplayDeadLettersOptions,
  type ReplayResult,
  replayDeadLetters,
} from "./dead-letters.ts";
export {
  checkDestinationName,
  checkDestinationPattern,
  destination,
  isDestinationName,
} from "./destination.ts";
export {
  DIRECT_FEATURES,
  type DirectBroker,
  type DirectBrokerOptions,
  directBroker,
} from "./direct/direct-broker.ts";
export { directScheme } from "./direct/scheme.ts";
export { CONTENT_TYPE, encodeMessage } from "./encode.ts";
export {
  DEAD_LETTER_HEADER,
  type DeadLetter,
  type Envelope,
  envelopeOf,
  fromHeaders,
  HEADER,
  isReservedHeader,
  type MessageKind,
  newMessageId,
  REPLY_HEADER,
  readDeadLetter,
  statusError,
  statusHeaders,
  toHeaders,
  type WireFallbacks,
} from "./envelope.ts";
export { MEMORY_FEATURES, type MemoryBrokerOptions, memoryBroker } from "./memory.ts";
export { createMessenger, DEFAULT_REQUEST_TIMEOUT_MS, SUBSCRIBE_DEFAULTS } from "./messenger.ts";
export {
  type Accepted,
  type AcceptOptions,
  OUTCOME_HEADER,
  outcomeError,
  outcomeHeaders,
  type SubmitOptions,
  type Submitted,
  type WorkerOptions,
  type WorkHandler,
  type WorkQueue,
  type WorkQueueOptions,
  workQueue,
} from "./work.ts";
