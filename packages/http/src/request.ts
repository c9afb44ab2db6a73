import { type DescMessage, fromJson, type JsonValue, type Registry } from "@bufbuild/protobuf";
import { Code, Reason } from "@weft/core";
import { locateJsonError, reasonOf } from "./diagnose.ts";
import { badField, RestError } from "./errors.ts";
import { convert, type FieldPlan, protoPath, resolvePath, setPath } from "./field-plan.ts";
import { findJsonSyntaxError } from "./json-syntax.ts";
import type { Route } from "./routes.ts";

type JsonObject = Record<string, unknown>;

export interface DecodeOptions {
  readonly ignoreUnknownFields: boolean;
  readonly registry: Registry | undefined;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a request body as JSON; `undefined` for an empty body. Malformed JSON is a 400 saying where. */
export function parseJsonBody(bytes: Uint8Array): unknown {
  if (bytes.length === 0) return undefined;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new RestError(400, Code.INVALID_ARGUMENT, Reason.MALFORMED_JSON, "request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const at = findJsonSyntaxError(text);
    const where =
      at === undefined
        ? (e as Error).message
        : `at line ${at.line} column ${at.column} (position ${at.position}): ${at.reason}`;
    throw new RestError(
      400,
      Code.INVALID_ARGUMENT,
      Reason.MALFORMED_JSON,
      `malformed JSON in the request body ${where}`,
    );
  }
}

function decodeSegment(segment: string, keepSlashes: boolean): string {
  if (!segment.includes("%")) return segment;
  try {
    return decodeURIComponent(keepSlashes ? segment.replace(/%2F/gi, "%252F") : segment);
  } catch {
    throw new RestError(
      400,
      Code.INVALID_ARGUMENT,
      Reason.MALFORMED_PATH,
      "malformed percent-encoding in the path",
    );
  }
}

/**
 * Assembles the proto3 JSON of the request message from the path variables, the query string and the
 * body, following the route's precompiled plan (no descriptor walks here).
 */
export function requestJson(
  route: Route,
  segments: readonly string[],
  search: string,
  body: unknown,
  strict: boolean,
): JsonObject {
  let root: JsonObject;
  switch (route.body.kind) {
    case "all":
      if (body === undefined) root = {};
      else if (typeof body === "object" && body !== null && !Array.isArray(body)) root = body as JsonObject;
      else {
        throw new RestError(
          400,
          Code.INVALID_ARGUMENT,
          Reason.INVALID_BODY,
          `the request body must be a JSON object (${route.input.typeName})`,
        );
      }
      break;
    case "field":
      root = body === undefined ? {} : { [route.body.field.key]: body };
      break;
    default:
      root = {};
  }

  for (const binding of route.bindings) {
    const { start, end } = binding.variable;
    let raw: string;
    if (end === start + 1) raw = decodeSegment(segments[start]!, false);
    else {
      const stop = end === -1 ? segments.length : end;
      raw = "";
      for (let i = start; i < stop; i++) raw += (i > start ? "/" : "") + decodeSegment(segments[i]!, true);
    }
    const leaf = binding.plans[binding.plans.length - 1]!;
    setPath(root, binding.plans, convert(leaf, raw, binding.fieldPath), false);
  }

  if (search !== "" && route.queryAllowed) {
    let once: Set<FieldPlan> | undefined;
    for (const [name, value] of new URLSearchParams(search)) {
      const plans = resolvePath(route.inputPlan, name);
      if (plans === undefined) {
        if (strict) throw badField(name, "unknown query parameter", Reason.UNKNOWN_FIELD);
        continue;
      }
      const fieldPath = protoPath(plans);
      if (isExcluded(route.excluded, fieldPath)) {
        if (strict)
          throw badField(
            fieldPath,
            "set by the path or the body, not the query string",
            Reason.UNKNOWN_FIELD,
          );
        continue;
      }
      const leaf = plans[plans.length - 1]!;
      const converted = convert(leaf, value, fieldPath);
      if (!leaf.repeated) {
        once ??= new Set();
        if (once.has(leaf))
          throw badField(fieldPath, "query parameter given more than once for a singular field");
        once.add(leaf);
      }
      setPath(root, plans, converted, leaf.repeated);
    }
  }
  return root;
}

function isExcluded(excluded: readonly string[], fieldPath: string): boolean {
  for (const e of excluded) {
    if (fieldPath === e || fieldPath.startsWith(`${e}.`) || e.startsWith(`${fieldPath}.`)) return true;
  }
  return false;
}

/** `fromJson`, with a failure turned into a 400 that names the field path (`item.price_cents`). */
export function decodeMessage(desc: DescMessage, json: JsonObject, options: DecodeOptions): unknown {
  try {
    return fromJson(desc, json as JsonValue, options);
  } catch (e) {
    const found = locateJsonError(desc, json, options);
    if (found !== undefined) throw badField(found.field, found.reason);
    const cause = e instanceof Error ? e.cause : undefined;
    const field =
      cause instanceof Error && typeof (cause as { field?: unknown }).field === "function"
        ? ((cause as unknown as { field(): { name: string } }).field().name ?? "")
        : "";
    if (field !== "") throw badField(field, reasonOf(e));
    throw new RestError(400, Code.INVALID_ARGUMENT, Reason.INVALID_FIELD, `invalid request: ${reasonOf(e)}`);
  }
}
