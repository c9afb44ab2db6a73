export { namesOf, type WeftKind, weftKindOf } from "./generate.ts";
export { protocGenWeft } from "./plugin.ts";
