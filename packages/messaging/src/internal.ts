/**
 * Unstable internals of `@weft/messaging`: no semver promise. For Weft's own packages (the broker
 * packages, `@weft/testing`'s conformance suite) and for tests.
 */

export { matches } from "./destination.ts";
export { pendingRequests } from "./messenger.ts";
export { checkParams, integerParam, integerParams, textParams } from "./url-params.ts";
