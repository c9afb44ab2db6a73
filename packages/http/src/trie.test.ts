import { describe, expect, it } from "vitest";
import { parsePathTemplate } from "./path-template.ts";
import { PathTrie } from "./trie.ts";

function trieOf(...templates: string[]): PathTrie<string> {
  const trie = new PathTrie<string>();
  for (const t of templates) {
    const parsed = parsePathTemplate(t);
    trie.insert(parsed.segments, parsed.verb, t);
  }
  return trie;
}

const segs = (path: string) => path.slice(1).split("/");

describe("PathTrie", () => {
  it("matches literals before * before **, and returns every match", () => {
    const trie = trieOf("/v1/orders/{id}", "/v1/orders/special", "/v1/{rest=**}", "/v1/orders/{id}/items");
    expect(trie.match(segs("/v1/orders/special"), "")).toEqual([
      "/v1/orders/special",
      "/v1/orders/{id}",
      "/v1/{rest=**}",
    ]);
    expect(trie.match(segs("/v1/orders/7/items"), "")).toEqual(["/v1/orders/{id}/items", "/v1/{rest=**}"]);
    expect(trie.match(segs("/v2/orders/7"), "")).toEqual([]);
  });

  it("does not let * match an empty segment; ** matches zero or more", () => {
    const trie = trieOf("/v1/orders/{id}", "/v1/files/{p=**}");
    expect(trie.match(segs("/v1/orders/"), "")).toEqual([]);
    expect(trie.match(segs("/v1/files"), "")).toEqual(["/v1/files/{p=**}"]);
    expect(trie.match(segs("/v1/files/a/b/c"), "")).toEqual(["/v1/files/{p=**}"]);
  });

  it("keys terminals by verb", () => {
    const trie = trieOf("/v1/orders/{id}:cancel", "/v1/orders/{id}");
    expect(trie.match(segs("/v1/orders/7"), "cancel")).toEqual(["/v1/orders/{id}:cancel"]);
    expect(trie.match(segs("/v1/orders/7"), "")).toEqual(["/v1/orders/{id}"]);
    expect(trie.match(segs("/v1/orders/7"), "other")).toEqual([]);
  });
});
