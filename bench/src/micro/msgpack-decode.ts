/**
 * Micro-benchmark of message decoding: a ~100-byte object and a ~16 KiB one, as MessagePack and as
 * JSON, through `messageType()` (the path every schema-less call takes).
 *
 *   npm run bench -- --micro msgpack-decode   (or: npx node bench/src/micro/msgpack-decode.ts)
 *
 * Prints nanoseconds per decode (the fastest of several rounds, the figure least disturbed by other
 * work on the machine) and the body sizes. Not run by the tests.
 */
import { messageType, type SerializerName } from "@weft/core";
import { nsPerOp } from "./measure.ts";

const item = (i: number) => ({
  id: `ord-${10000 + i}`,
  sku: "A-1",
  qty: 3 + (i % 5),
  price: 19.99,
  paid: i % 2 === 0,
  tags: ["gift", "express"],
  customer: { name: "Ada Lovelace", tier: 2 },
});
const small = item(0);
const large = { page: 1, total: 155, items: Array.from({ length: 155 }, (_, i) => item(i)) };

const codec = messageType<unknown>();

function measure(bytes: Uint8Array, serializer: SerializerName): number {
  return nsPerOp(() => codec.decode(bytes, serializer));
}

export function run(): void {
  for (const [name, value] of [
    ["small", small],
    ["large", large],
  ] as const) {
    for (const serializer of ["msgpack", "json"] as const) {
      const bytes = codec.encode(value, serializer);
      const ns = measure(bytes, serializer);
      console.log(
        `${name.padEnd(6)} ${serializer.padEnd(8)} ${String(bytes.length).padStart(6)} B ${ns.toFixed(0).padStart(8)} ns/op`,
      );
    }
  }
}

if (import.meta.main) run();
