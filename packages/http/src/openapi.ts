import { type DescEnum, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { codeName } from "@weft/core";
import type { FieldPlan, MessagePlan } from "./field-plan.ts";
import { VENDOR_TYPE } from "./negotiate.ts";
import { openApiPath } from "./path-template.ts";
import type { Route } from "./routes.ts";

/** A JSON Schema / OpenAPI object. */
export type OpenApiObject = { [key: string]: unknown };

export interface OpenApiInfo {
  title?: string;
  version?: string;
  description?: string;
}

export interface OpenApiBuildOptions {
  readonly basePath: string;
  readonly useProtoFieldName: boolean;
  readonly info: OpenApiInfo | undefined;
  readonly servers: readonly { url: string; description?: string }[] | undefined;
  readonly timeoutHeader: string;
  readonly versions: readonly string[];
  readonly defaultVersion: string;
  readonly aliases: boolean;
}

const ERROR_SCHEMA = "weft.RestError";
const QUERY_DEPTH = 4;

/**
 * Builds the OpenAPI 3.1 document of the routes, from the descriptors: one operation per binding,
 * path and query parameters with their proto3 JSON types, request bodies, responses and the error
 * schema, and a component schema for every message and enum reached (int64 as strings, well-known
 * types in their JSON forms).
 */
export function buildOpenApi(routes: readonly Route[], options: OpenApiBuildOptions): OpenApiObject {
  const schemas: Record<string, OpenApiObject> = {};
  const name = (f: { name: string; jsonName: string }) => (options.useProtoFieldName ? f.name : f.jsonName);

  const enumRef = (desc: DescEnum): OpenApiObject => {
    if (desc.typeName === "google.protobuf.NullValue") return { type: "null" };
    if (schemas[desc.typeName] === undefined) {
      schemas[desc.typeName] = {
        type: "string",
        title: desc.typeName,
        enum: desc.values.map((v) => v.name),
        description: "Serialized as the value name; the value number is accepted on input too.",
      };
    }
    return { $ref: `#/components/schemas/${desc.typeName}` };
  };

  const messageRef = (desc: DescMessage): OpenApiObject => {
    const wkt = wellKnown(desc);
    if (wkt !== undefined) return wkt;
    if (schemas[desc.typeName] === undefined) {
      const schema: OpenApiObject = { type: "object", title: desc.typeName };
      schemas[desc.typeName] = schema; // before the fields: recursive messages refer to it
      const properties: Record<string, OpenApiObject> = {};
      for (const field of desc.fields) properties[name(field)] = fieldSchema(field);
      if (desc.fields.length > 0) schema.properties = properties;
      const oneofs = desc.oneofs.filter((o) => !o.fields.every((f) => f.proto.proto3Optional));
      if (oneofs.length > 0) {
        schema.description = oneofs
          .map((o) => `At most one of ${o.fields.map((f) => name(f)).join(", ")} (oneof ${o.name}).`)
          .join(" ");
      }
    }
    return { $ref: `#/components/schemas/${desc.typeName}` };
  };

  const valueSchema = (
    kind: "scalar" | "enum" | "message",
    scalar: ScalarType | undefined,
    en: DescEnum | undefined,
    message: DescMessage | undefined,
  ): OpenApiObject =>
    kind === "scalar" ? scalarSchema(scalar!) : kind === "enum" ? enumRef(en!) : messageRef(message!);

  const fieldSchema = (field: DescField): OpenApiObject => {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return enumRef(field.enum);
      case "message":
        return messageRef(field.message);
      case "list":
        return { type: "array", items: valueSchema(field.listKind, field.scalar, field.enum, field.message) };
      case "map": {
        const schema: OpenApiObject = {
          type: "object",
          additionalProperties: valueSchema(field.mapKind, field.scalar, field.enum, field.message),
        };
        if (field.mapKey === ScalarType.BOOL) schema.propertyNames = { enum: ["true", "false"] };
        else if (field.mapKey !== ScalarType.STRING) schema.propertyNames = { pattern: "^-?[0-9]+$" };
        return schema;
      }
    }
  };

  schemas[ERROR_SCHEMA] = {
    type: "object",
    title: "Error",
    description:
      "Every error response. `code` is the Weft (gRPC) status code; the HTTP status follows from it.",
    required: ["code", "status", "reason", "message", "details"],
    properties: {
      code: { type: "integer", minimum: 0, maximum: 16 },
      status: { type: "string", enum: Array.from({ length: 17 }, (_, i) => codeName(i)) },
      reason: { type: "string", description: "Stable UPPER_SNAKE reason, or empty." },
      message: { type: "string" },
      details: {
        type: "array",
        description:
          "Structured details. Each is `{ type, value }` (the detail as JSON: a JSON detail, or a protobuf detail of a known type in proto3 JSON) or `{ type, bytes }` (a binary detail, base64).",
        items: {
          oneOf: [
            {
              type: "object",
              required: ["type", "value"],
              properties: {
                type: { type: "string", description: "The detail's type name." },
                value: { description: "The detail as JSON." },
              },
              additionalProperties: false,
            },
            {
              type: "object",
              required: ["type", "bytes"],
              properties: {
                type: { type: "string", description: "The detail's type name." },
                bytes: {
                  type: "string",
                  contentEncoding: "base64",
                  description: "A binary detail (protobuf of a type the gateway does not know), base64.",
                },
              },
              additionalProperties: false,
            },
          ],
        },
      },
      supportedVersions: {
        type: "array",
        items: { type: "string" },
        description: "With 406: the API versions that serve this path.",
      },
    },
  };

  const errorResponse = {
    description: "An error (see the `code` → HTTP status table in the gateway's documentation)",
    content: { "application/json": { schema: { $ref: `#/components/schemas/${ERROR_SCHEMA}` } } },
  };

  const paths: Record<string, Record<string, OpenApiObject>> = {};
  /** OpenAPI forbids two paths that differ only in variable names: the first one's names are kept. */
  const namesByShape = new Map<string, string[]>();

  for (const route of routes) {
    const variableNames = route.bindings.map((b) =>
      options.useProtoFieldName ? b.fieldPath : jsonPath(b.plans),
    );
    const shape = openApiPath(
      route.template,
      route.bindings.map(() => ""),
    );
    let names = namesByShape.get(shape);
    if (names === undefined) {
      names = variableNames;
      namesByShape.set(shape, names);
    }
    const key = options.basePath + openApiPath(route.template, names);
    paths[key] ??= {};
    const item = paths[key];
    const method = route.httpMethod.toLowerCase();
    if (item[method] !== undefined || !OPERATION_METHODS.has(method)) continue;

    const parameters: OpenApiObject[] = route.bindings.map((b, i) => {
      const leaf = b.plans[b.plans.length - 1]!;
      const seg = route.template.segments;
      const multi = b.variable.end === -1 || b.variable.end - b.variable.start > 1;
      const pattern = multi
        ? ` Matches \`${seg
            .slice(b.variable.start, b.variable.end === -1 ? undefined : b.variable.end)
            .map((s) => (s.kind === "literal" ? s.value : s.kind))
            .join("/")}\`; "/" in it is not escaped.`
        : "";
      return {
        name: names[i]!,
        in: "path",
        required: true,
        description: `Sets \`${b.fieldPath}\`.${pattern}`,
        schema: fieldSchema(leaf.field),
      };
    });
    if (route.queryAllowed) {
      for (const q of queryParameters(route.inputPlan, route.excluded, options.useProtoFieldName)) {
        const schema = fieldSchema(q.leaf.field);
        const param: OpenApiObject = { name: q.name, in: "query", required: false, schema };
        if (q.leaf.repeated) {
          param.style = "form";
          param.explode = true;
        }
        parameters.push(param);
      }
    }
    parameters.push({ $ref: "#/components/parameters/timeout" });

    const operation: OpenApiObject = {
      operationId: route.operationId,
      tags: [route.method.service.typeName],
      summary: `${route.method.service.typeName}.${route.method.proto!.name}`,
      parameters,
    };
    if (route.body.kind !== "none") {
      const schema =
        route.body.kind === "all" ? messageRef(route.input) : fieldSchema(route.body.field.field);
      operation.requestBody = { required: false, content: { "application/json": { schema } } };
    }
    const responseSchema =
      route.responseBody !== undefined ? fieldSchema(route.responseBody.field) : messageRef(route.output);
    const content: OpenApiObject = { "application/json": { schema: responseSchema } };
    if (route.version !== undefined)
      content[`${VENDOR_TYPE}; version=${route.version}`] = { schema: responseSchema };
    operation.responses = route.oneway
      ? {
          "202": {
            description: "Accepted: a one-way call, run after the response",
            content: { "application/json": { schema: { type: "object" } } },
          },
          default: errorResponse,
        }
      : { "200": { description: "OK", content }, default: errorResponse };
    item[method] = operation;
  }

  const info: OpenApiObject = {
    title: options.info?.title ?? "Weft REST API",
    version:
      options.info?.version ??
      (options.versions.length > 0 ? options.versions.map((v) => `v${v}`).join(", ") : "1"),
    description: options.info?.description ?? describeVersioning(options),
  };
  const doc: OpenApiObject = {
    openapi: "3.1.0",
    info,
    paths,
    components: {
      schemas,
      parameters: {
        timeout: {
          name: options.timeoutHeader,
          in: "header",
          required: false,
          description: "Call budget in milliseconds; the handler's deadline. 504 when it runs out.",
          schema: { type: "integer", minimum: 0 },
        },
      },
    },
  };
  if (options.servers !== undefined) doc.servers = options.servers;
  return doc;
}

const OPERATION_METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

function describeVersioning(options: OpenApiBuildOptions): string {
  const lines = [
    "Generated by the Weft REST gateway from the services' protobuf descriptors. JSON follows the proto3 canonical JSON mapping (64-bit integers as strings).",
  ];
  if (options.aliases && options.versions.length > 0) {
    lines.push(
      `Every /vN/… path also answers without its version prefix: \`Accept: ${VENDOR_TYPE}; version=N\` selects version N (406 when that version does not serve the path); plain \`application/json\` or no Accept gets the ${options.defaultVersion === "oldest" || options.defaultVersion === "latest" ? `${options.defaultVersion} version` : `version ${options.defaultVersion}`}.`,
    );
  }
  return lines.join("\n\n");
}

function jsonPath(plans: readonly FieldPlan[]): string {
  return plans.map((p) => p.key).join(".");
}

function* queryParameters(
  root: MessagePlan,
  excluded: readonly string[],
  useProtoFieldName: boolean,
): Generator<{ name: string; leaf: FieldPlan }> {
  const stack = new Set<DescMessage>([root.desc]);
  function* walk(
    plan: MessagePlan,
    protoPrefix: string,
    namePrefix: string,
    depth: number,
  ): Generator<{ name: string; leaf: FieldPlan }> {
    for (const field of plan.desc.fields) {
      const fp = plan.fields.get(field.name)!;
      const protoName = protoPrefix + fp.name;
      if (excluded.some((e) => protoName === e || protoName.startsWith(`${e}.`))) continue;
      const paramName = namePrefix + (useProtoFieldName ? fp.name : fp.key);
      if (fp.conversion !== "none") {
        yield { name: paramName, leaf: fp };
      } else if (fp.message !== undefined && depth < QUERY_DEPTH && !stack.has(fp.message.desc)) {
        stack.add(fp.message.desc);
        yield* walk(fp.message, `${protoName}.`, `${paramName}.`, depth + 1);
        stack.delete(fp.message.desc);
      }
    }
  }
  yield* walk(root, "", "", 0);
}

function scalarSchema(scalar: ScalarType): OpenApiObject {
  switch (scalar) {
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0, maximum: 4294967295 };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    default:
      return { type: "string" };
  }
}

function wellKnown(desc: DescMessage): OpenApiObject | undefined {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return {
        type: "string",
        pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        description: "Seconds with an s suffix, e.g. 1.5s",
      };
    case "google.protobuf.FieldMask":
      return { type: "string", description: "Comma-separated field paths in lowerCamelCase" };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return { description: "Any JSON value" };
    case "google.protobuf.ListValue":
      return { type: "array", items: {} };
    case "google.protobuf.Empty":
      return { type: "object" };
    case "google.protobuf.Any":
      return {
        type: "object",
        required: ["@type"],
        properties: { "@type": { type: "string" } },
        additionalProperties: true,
      };
    case "google.protobuf.DoubleValue":
      return { type: ["number", "null"], format: "double" };
    case "google.protobuf.FloatValue":
      return { type: ["number", "null"], format: "float" };
    case "google.protobuf.Int64Value":
      return { type: ["string", "null"], format: "int64" };
    case "google.protobuf.UInt64Value":
      return { type: ["string", "null"], format: "uint64" };
    case "google.protobuf.Int32Value":
      return { type: ["integer", "null"], format: "int32" };
    case "google.protobuf.UInt32Value":
      return { type: ["integer", "null"], format: "uint32" };
    case "google.protobuf.BoolValue":
      return { type: ["boolean", "null"] };
    case "google.protobuf.StringValue":
      return { type: ["string", "null"] };
    case "google.protobuf.BytesValue":
      return { type: ["string", "null"], contentEncoding: "base64" };
    default:
      return undefined;
  }
}
