import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Base64Decoder,
  binaryWebType,
  decodeWebText,
  encodeWebText,
  isWebText,
  textWebType,
} from "./web-text.ts";

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* chunksOf(parts: readonly (string | Uint8Array)[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield typeof p === "string" ? Buffer.from(p, "latin1") : p;
}

describe("grpc-web-text", () => {
  it("maps content types both ways", () => {
    expect(isWebText("application/grpc-web-text")).toBe(true);
    expect(isWebText("application/grpc-web-text+proto")).toBe(true);
    expect(isWebText("application/grpc-web+proto")).toBe(false);
    expect(binaryWebType("application/grpc-web-text+proto")).toBe("application/grpc-web+proto");
    expect(binaryWebType("application/grpc-web-text")).toBe("application/grpc-web");
    expect(textWebType("application/grpc-web+proto")).toBe("application/grpc-web-text+proto");
    expect(textWebType("application/grpc-web-text+proto")).toBe("application/grpc-web-text+proto");
  });

  it("decodes runs padded separately, one after the other", () => {
    const d = new Base64Decoder();
    const text = `${Buffer.from("a").toString("base64")}${Buffer.from("bc").toString("base64")}${Buffer.from("def").toString("base64")}`;
    expect(d.push(text).toString()).toBe("abcdef");
    d.end();
  });

  it("holds a partial group for the next chunk and skips whitespace", () => {
    const d = new Base64Decoder();
    expect(d.push("aGVs").toString()).toBe("hel");
    expect(d.push("bG8\r\n").length).toBe(0);
    expect(d.push("=").toString()).toBe("lo");
    d.end();
  });

  it("rejects characters outside base64 and input ending inside a group", () => {
    expect(() => new Base64Decoder().push("ab$d")).toThrow(/not base64/);
    const d = new Base64Decoder();
    d.push("abc");
    expect(() => d.end()).toThrow(/inside a base64 group/);
  });

  it("any bytes, encoded in any runs and cut into any chunks, decode to themselves", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 8 }),
        async (runs, cuts) => {
          const text = runs.map((r) => Buffer.from(r).toString("base64")).join("");
          const chunks: string[] = [];
          let at = 0;
          for (let i = 0; at < text.length; i++) {
            const n = cuts[i % cuts.length]!;
            chunks.push(text.slice(at, at + n));
            at += n;
          }
          const bytes = await collect(decodeWebText(chunksOf(chunks)));
          expect(bytes).toEqual(Buffer.concat(runs.map((r) => Buffer.from(r))));
        },
      ),
    );
  });

  it("encodes each chunk as its own padded run", async () => {
    const out = await collect(encodeWebText(chunksOf([Buffer.from("a"), Buffer.from("bc")])));
    expect(out.toString("latin1")).toBe("YQ==YmM=");
    expect(await collect(decodeWebText(chunksOf([out])))).toEqual(Buffer.from("abc"));
  });
});
