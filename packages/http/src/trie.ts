import type { Segment } from "./path-template.ts";

interface Node<T> {
  literals: Map<string, Node<T>> | undefined;
  star: Node<T> | undefined;
  /** Values whose template ends here, by verb. */
  ends: Map<string, T[]> | undefined;
  /** Values whose template ends in `**` here (matching the rest of the path), by verb. */
  rest: Map<string, T[]> | undefined;
}

function node<T>(): Node<T> {
  return { literals: undefined, star: undefined, ends: undefined, rest: undefined };
}

function push<T>(map: Map<string, T[]>, verb: string, value: T): void {
  const list = map.get(verb);
  if (list === undefined) map.set(verb, [value]);
  else list.push(value);
}

/**
 * A segment trie of path templates, built once. `match` walks it with backtracking and returns every
 * value whose template matches, most specific first (a literal beats `*`, which beats `**`).
 */
export class PathTrie<T> {
  readonly #root: Node<T> = node();

  insert(segments: readonly Segment[], verb: string, value: T): void {
    let n = this.#root;
    for (const seg of segments) {
      if (seg.kind === "**") {
        n.rest ??= new Map();
        push(n.rest, verb, value);
        return;
      }
      if (seg.kind === "*") {
        n.star ??= node();
        n = n.star;
      } else {
        n.literals ??= new Map();
        let next = n.literals.get(seg.value);
        if (next === undefined) {
          next = node();
          n.literals.set(seg.value, next);
        }
        n = next;
      }
    }
    n.ends ??= new Map();
    push(n.ends, verb, value);
  }

  /** Values matching `segments` with `verb` (`""` for none), most specific first. */
  match(segments: readonly string[], verb: string): T[] {
    const out: T[] = [];
    collect(this.#root, segments, 0, verb, out);
    return out;
  }
}

function collect<T>(n: Node<T>, segments: readonly string[], i: number, verb: string, out: T[]): void {
  if (i === segments.length) {
    const ends = n.ends?.get(verb);
    if (ends !== undefined) for (const v of ends) out.push(v);
  } else {
    const seg = segments[i]!;
    const lit = n.literals?.get(seg);
    if (lit !== undefined) collect(lit, segments, i + 1, verb, out);
    if (n.star !== undefined && seg.length > 0) collect(n.star, segments, i + 1, verb, out);
  }
  const rest = n.rest?.get(verb);
  if (rest !== undefined) for (const v of rest) out.push(v);
}
