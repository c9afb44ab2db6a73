/**
 * Serializer ids, as they appear in byte 5 of every frame header. A call chooses its serializer; the
 * server answers in the serializer the request used.
 */
export const Serializer = {
  /** Raw bytes: the body is the message. */
  raw: 0,
  protobuf: 1,
  json: 2,
  msgpack: 3,
} as const;
export type SerializerName = keyof typeof Serializer;
export type SerializerId = (typeof Serializer)[SerializerName];

const byId: readonly SerializerName[] = ["raw", "protobuf", "json", "msgpack"];

export function serializerName(id: number): SerializerName | undefined {
  return byId[id];
}
