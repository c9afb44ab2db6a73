import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { badField } from "./errors.ts";

/**
 * How a string from a path segment or a query parameter becomes a proto3 JSON value. The JSON mapping
 * accepts strings for every number type (int64 included) and for bytes, timestamps, durations and field
 * masks, so most values pass through and `fromJson` validates them; booleans and enum numbers need a
 * conversion. `none`: the field cannot be set from a string (messages, maps, `Struct`, …).
 */
export type Conversion = "string" | "bool" | "enum" | "none";

export interface FieldPlan {
  readonly field: DescField;
  /** Proto field name, e.g. `page_size`. */
  readonly name: string;
  /** JSON name, e.g. `pageSize`. */
  readonly key: string;
  readonly conversion: Conversion;
  readonly repeated: boolean;
  /** For a singular message field that query parameters may descend into (`filter.customer`). */
  readonly message: MessagePlan | undefined;
}

export interface MessagePlan {
  readonly desc: DescMessage;
  /** By proto name and by JSON name. */
  readonly fields: ReadonlyMap<string, FieldPlan>;
}

const STRING_WKT = new Set([
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
  "google.protobuf.StringValue",
  "google.protobuf.BytesValue",
  "google.protobuf.Int32Value",
  "google.protobuf.Int64Value",
  "google.protobuf.UInt32Value",
  "google.protobuf.UInt64Value",
  "google.protobuf.FloatValue",
  "google.protobuf.DoubleValue",
]);

function conversionOf(field: DescField): Conversion {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  switch (kind) {
    case "scalar":
      return field.scalar === ScalarType.BOOL ? "bool" : "string";
    case "enum":
      return field.enum!.typeName === "google.protobuf.NullValue" ? "none" : "enum";
    case "message": {
      const typeName = field.message!.typeName;
      if (typeName === "google.protobuf.BoolValue") return "bool";
      return STRING_WKT.has(typeName) ? "string" : "none";
    }
    default:
      return "none";
  }
}

/** Builds the plans of every message reachable through singular message fields, once. */
export class PlanCache {
  readonly #plans = new Map<DescMessage, MessagePlan>();

  get(desc: DescMessage): MessagePlan {
    const cached = this.#plans.get(desc);
    if (cached !== undefined) return cached;
    const fields = new Map<string, FieldPlan>();
    const plan: MessagePlan = { desc, fields };
    this.#plans.set(desc, plan); // before the fields: recursive messages resolve to this plan
    for (const field of desc.fields) {
      const descend =
        field.fieldKind === "message" &&
        !field.message.typeName.startsWith("google.protobuf.") &&
        conversionOf(field) === "none";
      const fp: FieldPlan = {
        field,
        name: field.name,
        key: field.jsonName,
        conversion: conversionOf(field),
        repeated: field.fieldKind === "list",
        message: descend ? this.get(field.message!) : undefined,
      };
      fields.set(field.name, fp);
      fields.set(field.jsonName, fp);
    }
    return plan;
  }
}

/** Resolves a dotted name (`filter.ships_to.city`, proto or JSON names) to the plans along it. */
export function resolvePath(root: MessagePlan, dotted: string): FieldPlan[] | undefined {
  const out: FieldPlan[] = [];
  let plan: MessagePlan | undefined = root;
  let start = 0;
  for (;;) {
    if (plan === undefined) return undefined;
    const dot = dotted.indexOf(".", start);
    const part = dot < 0 ? dotted.slice(start) : dotted.slice(start, dot);
    const fp = plan.fields.get(part);
    if (fp === undefined) return undefined;
    out.push(fp);
    if (dot < 0) return out;
    plan = fp.message;
    start = dot + 1;
  }
}

/** The proto-name path of a resolved field, e.g. `filter.ships_to`. */
export function protoPath(plans: readonly FieldPlan[]): string {
  let s = plans[0]!.name;
  for (let i = 1; i < plans.length; i++) s += `.${plans[i]!.name}`;
  return s;
}

const INTEGER = /^-?\d+$/;

/** Converts one string to the JSON value of a field; throws a 400 naming `fieldPath` when it cannot. */
export function convert(plan: FieldPlan, raw: string, fieldPath: string): string | number | boolean {
  switch (plan.conversion) {
    case "string":
      return raw;
    case "bool":
      if (raw === "true" || raw === "1" || raw === "True" || raw === "TRUE") return true;
      if (raw === "false" || raw === "0" || raw === "False" || raw === "FALSE") return false;
      throw badField(fieldPath, `expected a boolean (true or false), got ${quote(raw)}`);
    case "enum":
      return INTEGER.test(raw) ? Number(raw) : raw;
    default:
      throw badField(fieldPath, "this field cannot be set from a path or query parameter");
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Sets a value at a field path in a proto3 JSON object, creating the objects along it. A key the body
 * already holds under the other naming (proto name vs JSON name) is moved, so `fromJson` never sees a
 * field twice. `append` adds to a repeated field instead of replacing it. Returns false when the body
 * holds a non-object where an object is needed (`fromJson` then reports that field).
 */
export function setPath(
  root: JsonObject,
  plans: readonly FieldPlan[],
  value: unknown,
  append: boolean,
): boolean {
  let obj = root;
  const last = plans.length - 1;
  for (let i = 0; i <= last; i++) {
    const fp = plans[i]!;
    let current = obj[fp.key];
    if (fp.name !== fp.key && Object.hasOwn(obj, fp.name)) {
      if (current === undefined) current = obj[fp.name];
      delete obj[fp.name];
    }
    if (i === last) {
      if (append && Array.isArray(current)) current.push(value);
      else obj[fp.key] = append ? [value] : value;
      return true;
    }
    if (current === undefined || current === null) {
      current = {};
    } else if (!isObject(current)) {
      obj[fp.key] = current;
      return false;
    }
    obj[fp.key] = current;
    obj = current as JsonObject;
  }
  return true;
}
