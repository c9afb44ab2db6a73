/**
 * `google.api.http` path templates:
 *
 * ```
 * Template = "/" Segments [ Verb ] ;
 * Segments = Segment { "/" Segment } ;
 * Segment  = "*" | "**" | LITERAL | Variable ;
 * Variable = "{" FieldPath [ "=" Segments ] "}" ;
 * FieldPath = IDENT { "." IDENT } ;
 * Verb     = ":" LITERAL ;
 * ```
 *
 * `{field}` is `{field=*}`. `**` matches the rest of the path (zero or more segments) and must come last.
 */

export type Segment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "*" }
  | { readonly kind: "**" };

export interface TemplateVariable {
  /** Dotted field path as written, e.g. `item.sku`. */
  readonly fieldPath: string;
  /** Index of the first segment the variable binds. */
  readonly start: number;
  /** Index after its last segment; `-1` when it ends in `**` (the rest of the path). */
  readonly end: number;
}

export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly Segment[];
  /** The custom verb after the last segment (`cancel` in `/v1/orders/{id}:cancel`), or `""`. */
  readonly verb: string;
  readonly variables: readonly TemplateVariable[];
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LITERAL_CHAR = /^[A-Za-z0-9\-._~!$&'()+,;=@%]$/;

/** Parses a path template; throws an `Error` saying what is wrong and where. */
export function parsePathTemplate(source: string): PathTemplate {
  const fail = (why: string, at: number): never => {
    throw new Error(`invalid path template ${JSON.stringify(source)} at ${at}: ${why}`);
  };
  if (!source.startsWith("/")) fail('must start with "/"', 0);
  const segments: Segment[] = [];
  const variables: TemplateVariable[] = [];
  let verb = "";
  let i = 1;
  let inVariable: { fieldPath: string; start: number } | undefined;

  const literal = (): string => {
    const start = i;
    while (i < source.length && LITERAL_CHAR.test(source[i]!)) i++;
    if (i === start) fail("expected a literal, * or **", i);
    return source.slice(start, i);
  };

  for (;;) {
    // one segment
    const ch = source[i];
    if (ch === "{") {
      if (inVariable !== undefined) fail("variables cannot nest", i);
      i++;
      const start = i;
      while (i < source.length && /[A-Za-z0-9_.]/.test(source[i]!)) i++;
      const fieldPath = source.slice(start, i);
      if (!fieldPath.split(".").every((p) => IDENT.test(p))) fail("expected a field path", start);
      if (variables.some((v) => v.fieldPath === fieldPath)) fail(`field ${fieldPath} bound twice`, start);
      if (source[i] === "}") {
        i++;
        variables.push({ fieldPath, start: segments.length, end: segments.length + 1 });
        segments.push({ kind: "*" });
      } else if (source[i] === "=") {
        i++;
        inVariable = { fieldPath, start: segments.length };
        continue;
      } else {
        fail('expected "}" or "="', i);
      }
    } else if (ch === "*") {
      if (source[i + 1] === "*") {
        i += 2;
        segments.push({ kind: "**" });
      } else {
        i++;
        segments.push({ kind: "*" });
      }
    } else {
      segments.push({ kind: "literal", value: literal() });
    }
    if (inVariable !== undefined && source[i] === "}") {
      i++;
      const last = segments[segments.length - 1]!;
      variables.push({
        fieldPath: inVariable.fieldPath,
        start: inVariable.start,
        end: last.kind === "**" ? -1 : segments.length,
      });
      inVariable = undefined;
    }
    if (i === source.length) break;
    if (source[i] === "/") {
      if (segments[segments.length - 1]!.kind === "**") fail('"**" must be the last segment', i);
      i++;
      continue;
    }
    if (source[i] === ":" && inVariable === undefined) {
      i++;
      verb = literal();
      if (i !== source.length) fail("unexpected text after the verb", i);
      break;
    }
    fail(`unexpected ${JSON.stringify(source[i])}`, i);
  }
  if (inVariable !== undefined) fail('unclosed "{"', source.length);
  return { source, segments, verb, variables };
}

/**
 * The template with its variables written the OpenAPI way: `/v1/{name=shelves/*}` → `/v1/{name}`.
 * `names` renames the variables in order (OpenAPI needs one name per position across operations).
 */
export function openApiPath(template: PathTemplate, names?: readonly string[]): string {
  let out = "";
  let v = 0;
  for (let s = 0; s < template.segments.length; s++) {
    const variable = template.variables.find((x) => x.start === s);
    if (variable !== undefined) {
      out += `/{${names?.[v] ?? variable.fieldPath}}`;
      v++;
      s = variable.end === -1 ? template.segments.length : variable.end - 1;
      continue;
    }
    const seg = template.segments[s]!;
    out += `/${seg.kind === "literal" ? seg.value : seg.kind}`;
  }
  if (out === "") out = "/";
  return template.verb === "" ? out : `${out}:${template.verb}`;
}

/** A key equal for templates that match the same paths (variables and `*` are alike). */
export function shapeOf(template: PathTemplate): string {
  let key = "";
  for (const seg of template.segments) key += seg.kind === "literal" ? `/=${seg.value}` : `/${seg.kind}`;
  return `${key}:${template.verb}`;
}
