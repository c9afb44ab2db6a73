/** Where and why a JSON text is malformed. */
export interface JsonSyntaxError {
  /** Offset in characters from the start of the text. */
  readonly position: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
  readonly reason: string;
}

const ARRAY = 0;
const OBJECT = 1;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

/**
 * Finds the first syntax error of a JSON text after `JSON.parse` rejected it, so the 400 can always say
 * where (V8's own messages leave the position out for some errors, and quote the input for others).
 * Iterative: nesting depth costs no stack. Returns `undefined` for valid JSON.
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const n = text.length;
  const stack: number[] = [];
  let i = 0;

  const fail = (at: number, reason: string): JsonSyntaxError => {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < at; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        lineStart = k + 1;
      }
    }
    return { position: at, line, column: at - lineStart + 1, reason };
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const describe = (at: number) =>
    at >= n ? "unexpected end of input" : `unexpected character ${JSON.stringify(text[at])}`;
  /** Reads a string at `i` (which must be `"`); returns an error or undefined. */
  const str = (what: string): JsonSyntaxError | undefined => {
    if (text[i] !== '"') return fail(i, `${describe(i)}, expected ${what}`);
    const start = i;
    i++;
    for (;;) {
      if (i >= n) return fail(start, "unterminated string");
      const c = text.charCodeAt(i);
      if (c === 34) {
        i++;
        return undefined;
      }
      if (c < 0x20) return fail(i, "control character in string (escape it)");
      if (c === 92) {
        const e = text[i + 1];
        if (e === "u") {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) return fail(i, "invalid \\u escape in string");
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          return fail(i, "invalid escape in string");
        }
        continue;
      }
      i++;
    }
  };
  /** After `{` or `,` in an object: a key and a colon. */
  const key = (): JsonSyntaxError | undefined => {
    ws();
    const e = str("a double-quoted property name");
    if (e !== undefined) return e;
    ws();
    if (text[i] !== ":") return fail(i, `${describe(i)}, expected ":" after the property name`);
    i++;
    return undefined;
  };

  for (;;) {
    // a value
    ws();
    if (i >= n) return fail(i, "unexpected end of input, expected a value");
    const c = text[i]!;
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") {
        i++;
      } else {
        stack.push(OBJECT);
        const e = key();
        if (e !== undefined) return e;
        continue;
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") {
        i++;
      } else {
        stack.push(ARRAY);
        continue;
      }
    } else if (c === '"') {
      const e = str("a string");
      if (e !== undefined) return e;
    } else if (c === "t" || c === "f" || c === "n") {
      const word = c === "t" ? "true" : c === "f" ? "false" : "null";
      if (text.startsWith(word, i)) i += word.length;
      else return fail(i, `${describe(i)}, expected a value`);
    } else {
      NUMBER.lastIndex = i;
      if (!NUMBER.test(text)) return fail(i, `${describe(i)}, expected a value`);
      i = NUMBER.lastIndex;
    }
    // after a value: close containers, or a comma and the next value
    for (;;) {
      ws();
      if (stack.length === 0) {
        return i < n ? fail(i, `${describe(i)} after the JSON value`) : undefined;
      }
      const top = stack[stack.length - 1];
      const ch = text[i];
      if (ch === ",") {
        i++;
        if (top === OBJECT) {
          const e = key();
          if (e !== undefined) return e;
        }
        break;
      }
      if ((top === ARRAY && ch === "]") || (top === OBJECT && ch === "}")) {
        i++;
        stack.pop();
        continue;
      }
      return fail(i, `${describe(i)}, expected "," or "${top === ARRAY ? "]" : "}"}"`);
    }
  }
}
