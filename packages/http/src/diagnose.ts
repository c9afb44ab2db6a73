import {
  type DescField,
  type DescMessage,
  fromJson,
  type JsonValue,
  type Registry,
} from "@bufbuild/protobuf";

/**
 * Finds which field of a proto3 JSON value `fromJson` rejected, as a path in proto field names
 * (`item.price_cents`, `items[2].sku`, `labels["k"]`), with the reason. Runs only after a failure, so
 * the request path pays nothing for it.
 */
export function locateJsonError(
  desc: DescMessage,
  json: unknown,
  options: { ignoreUnknownFields: boolean; registry: Registry | undefined },
): { field: string; reason: string } | undefined {
  return walk(desc, json, "", options, 0);
}

type Options = { ignoreUnknownFields: boolean; registry: Registry | undefined };

const MAX_DEPTH = 64;

function tryDecode(desc: DescMessage, json: unknown, options: Options): string | undefined {
  try {
    fromJson(desc, json as JsonValue, options);
    return undefined;
  } catch (e) {
    return reasonOf(e);
  }
}

/** The reason of a protobuf-es JSON error, without its `cannot decode field x.y.Z from JSON:` prefix. */
export function reasonOf(e: unknown): string {
  const cause = e instanceof Error ? e.cause : undefined;
  if (cause instanceof Error && typeof (cause as { field?: unknown }).field === "function")
    return cause.message;
  const message = e instanceof Error ? e.message : String(e);
  const m = /^cannot decode .*? from JSON:? (.*)$/s.exec(message);
  return m === null ? message : m[1]!;
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function walk(
  desc: DescMessage,
  json: unknown,
  path: string,
  options: Options,
  depth: number,
): { field: string; reason: string } | undefined {
  if (depth > MAX_DEPTH || desc.typeName.startsWith("google.protobuf.")) {
    const reason = tryDecode(desc, json, options);
    return reason === undefined ? undefined : { field: path || desc.typeName, reason };
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { field: path || "(body)", reason: `expected a JSON object for ${desc.typeName}` };
  }
  const byKey = new Map<string, DescField>();
  for (const f of desc.fields) byKey.set(f.name, f).set(f.jsonName, f);
  for (const [key, value] of Object.entries(json)) {
    const field = byKey.get(key);
    if (field === undefined) {
      if (!options.ignoreUnknownFields && !(key.startsWith("[") && key.endsWith("]"))) {
        return { field: join(path, key), reason: "unknown field" };
      }
      continue;
    }
    const fieldPath = join(path, field.name);
    const single = (v: unknown) => tryDecode(desc, { [key]: v }, options);
    let found: { field: string; reason: string } | undefined;
    switch (field.fieldKind) {
      case "message":
        if (value !== null) found = walk(field.message, value, fieldPath, options, depth + 1);
        break;
      case "list":
        if (!Array.isArray(value)) {
          if (value !== null) found = { field: fieldPath, reason: "expected a JSON array" };
          break;
        }
        for (let i = 0; i < value.length && found === undefined; i++) {
          const item: unknown = value[i];
          if (field.listKind === "message" && item !== null) {
            found = walk(field.message, item, `${fieldPath}[${i}]`, options, depth + 1);
          } else {
            const reason = single([item]);
            if (reason !== undefined) found = { field: `${fieldPath}[${i}]`, reason };
          }
        }
        break;
      case "map":
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          if (value !== null) found = { field: fieldPath, reason: "expected a JSON object" };
          break;
        }
        for (const [k, v] of Object.entries(value)) {
          const entryPath = `${fieldPath}[${JSON.stringify(k)}]`;
          if (field.mapKind === "message" && v !== null) {
            const keyReason = single({ [k]: {} });
            found =
              keyReason !== undefined
                ? { field: entryPath, reason: keyReason }
                : walk(field.message, v, entryPath, options, depth + 1);
          } else {
            const reason = single({ [k]: v });
            if (reason !== undefined) found = { field: entryPath, reason };
          }
          if (found !== undefined) break;
        }
        break;
      default: {
        const reason = single(value);
        if (reason !== undefined) found = { field: fieldPath, reason };
      }
    }
    if (found !== undefined) return found;
  }
  return undefined;
}
