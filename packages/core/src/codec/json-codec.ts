import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import { decodeFailed, type MessageCodec, unsupportedSerializer } from "./message-codec.ts";
import { createMsgpackDecoder, encodeMsgpack } from "./msgpack.ts";
import type { SerializerName } from "./serializer.ts";
import type { StandardSchemaV1 } from "./standard-schema.ts";

export interface MessageTypeOptions<T> {
  /**
   * Validates every decoded message (the server's input, the client's output) with any Standard
   * Schema validator (zod, valibot, …). A failure is `INVALID_ARGUMENT`, reason `VALIDATION_FAILED`,
   * with the issues in `details`. The schema's output (after transforms) is what the handler sees.
   * Only synchronous schemas are supported.
   */
  schema?: StandardSchemaV1<unknown, T>;
  /** Serializers to offer, default first. Default `["msgpack", "json"]`. */
  serializers?: readonly ("json" | "msgpack")[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const msgpack = createMsgpackDecoder();

/**
 * A code-first message type: values of `T` travel as MessagePack or JSON. Pass a Standard Schema to
 * validate what arrives; otherwise `T` is trusted as declared.
 *
 * MessagePack arrives through a strict decoder (`MsgpackDecoder` in `msgpack.ts`): plain types only,
 * timestamps as `Date`, no other extension, depth and length limits, no `__proto__` key. `undefined`
 * is sent as nil, so a property set to `undefined` arrives as `null` (JSON leaves it out).
 *
 * ```ts
 * const Item = messageType<{ sku: string; price: number }>();
 * const Checked = messageType({ schema: z.object({ sku: z.string() }) });
 * ```
 */
export function messageType<T>(options?: MessageTypeOptions<T>): MessageCodec<T>;
export function messageType<S extends StandardSchemaV1>(options: {
  schema: S;
  serializers?: readonly ("json" | "msgpack")[];
}): MessageCodec<StandardSchemaV1.InferOutput<S>>;
export function messageType<T>(options: MessageTypeOptions<T> = {}): MessageCodec<T> {
  const serializers = options.serializers ?? (["msgpack", "json"] as const);
  const schema = options.schema;
  const check = schema === undefined ? (v: unknown) => v as T : (v: unknown) => validate(schema, v);
  return {
    serializers,
    encode(value: T, serializer: SerializerName): Uint8Array {
      switch (serializer) {
        case "msgpack":
          if (!serializers.includes("msgpack")) throw unsupportedSerializer(serializer, serializers);
          return encodeMsgpack(value);
        case "json":
          if (!serializers.includes("json")) throw unsupportedSerializer(serializer, serializers);
          return encoder.encode(JSON.stringify(value) ?? "null");
        default:
          throw unsupportedSerializer(serializer, serializers);
      }
    },
    decode(bytes: Uint8Array, serializer: SerializerName): T {
      let value: unknown;
      try {
        switch (serializer) {
          case "msgpack":
            if (!serializers.includes("msgpack")) throw unsupportedSerializer(serializer, serializers);
            value = bytes.length === 0 ? undefined : msgpack.decode(bytes);
            break;
          case "json":
            if (!serializers.includes("json")) throw unsupportedSerializer(serializer, serializers);
            value = bytes.length === 0 ? undefined : JSON.parse(decoder.decode(bytes));
            break;
          default:
            throw unsupportedSerializer(serializer, serializers);
        }
      } catch (e) {
        if (e instanceof WeftError) throw e;
        throw decodeFailed(serializer, e);
      }
      return check(value);
    },
  };
}

function validate<T>(schema: StandardSchemaV1<unknown, T>, value: unknown): T {
  const result = schema["~standard"].validate(value);
  if (result instanceof Promise) {
    throw new WeftError(Code.INTERNAL, "asynchronous Standard Schema validators are not supported", {
      reason: Reason.ASYNC_SCHEMA_UNSUPPORTED,
    });
  }
  if (result.issues === undefined) return result.value;
  const details = result.issues.map((issue) => ({
    type: "weft.ValidationIssue",
    value: {
      message: issue.message,
      path: (issue.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join("."),
    },
  }));
  const first = details[0]?.value;
  const where = first !== undefined && first.path.length > 0 ? ` at "${first.path}"` : "";
  throw new WeftError(Code.INVALID_ARGUMENT, `validation failed${where}: ${first?.message ?? "invalid"}`, {
    reason: Reason.VALIDATION_FAILED,
    details,
  });
}
