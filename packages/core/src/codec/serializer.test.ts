import { describe, expect, it } from "vitest";
import { Serializer, serializerName } from "./serializer.ts";

describe("serializer ids", () => {
  it("are 0 raw, 1 protobuf, 2 json, 3 msgpack", () => {
    expect(Serializer).toEqual({ raw: 0, protobuf: 1, json: 2, msgpack: 3 });
  });

  it("map back to names, and unknown ids to undefined", () => {
    for (const [name, id] of Object.entries(Serializer)) expect(serializerName(id)).toBe(name);
    for (const id of [4, 255, -1, 1.5]) expect(serializerName(id)).toBeUndefined();
  });
});
