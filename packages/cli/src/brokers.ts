import type { BrokerSchemes } from "@weft/messaging";

/** The broker URL schemes `weft` opens, besides `@weft/messaging`'s built-in `memory:`. */
export const BROKER_SCHEMES: BrokerSchemes = {};
