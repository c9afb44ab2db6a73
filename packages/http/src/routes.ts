import { type DescMessage, getExtension, hasExtension } from "@bufbuild/protobuf";
import { ConfigError, type MethodInfo } from "@weft/core";
import { type FieldPlan, type MessagePlan, type PlanCache, protoPath, resolvePath } from "./field-plan.ts";
import { http } from "./gen/google/api/annotations_pb.ts";
import type { HttpRule } from "./gen/google/api/http_pb.ts";
import { compareVersions, pickDefault, type VersionRequest, versionOfSegment } from "./negotiate.ts";
import { type PathTemplate, parsePathTemplate, shapeOf, type TemplateVariable } from "./path-template.ts";
import { PathTrie } from "./trie.ts";

export type BodyPlan =
  | { readonly kind: "none" }
  | { readonly kind: "all" }
  | { readonly kind: "field"; readonly field: FieldPlan };

export interface PathBinding {
  readonly variable: TemplateVariable;
  readonly plans: readonly FieldPlan[];
  /** Proto-name path, e.g. `item.sku`. */
  readonly fieldPath: string;
}

/** One compiled `google.api.http` binding of a method. */
export interface Route {
  /** Upper-case HTTP method. */
  readonly httpMethod: string;
  /** The path template as declared, e.g. `/v1/orders/{order_id}`. */
  readonly pattern: string;
  readonly template: PathTemplate;
  /** The API version its first segment names (`v2` → `"2"`), if any. */
  readonly version: string | undefined;
  readonly method: MethodInfo;
  /** Unique across the gateway: `orders.v1.Orders.GetOrder`, `_1`… for additional bindings. */
  readonly operationId: string;
  readonly input: DescMessage;
  readonly output: DescMessage;
  readonly inputPlan: MessagePlan;
  readonly body: BodyPlan;
  readonly responseBody: FieldPlan | undefined;
  readonly bindings: readonly PathBinding[];
  /** False with `body: "*"`: every field comes from the body. */
  readonly queryAllowed: boolean;
  /** Proto paths that query parameters may not set (bound by the path, or the body field). */
  readonly excluded: readonly string[];
  readonly oneway: boolean;
}

const METHOD_OF_CASE = { get: "GET", put: "PUT", post: "POST", delete: "DELETE", patch: "PATCH" } as const;

/** Compiles every registered method that carries a `google.api.http` rule (and its additional bindings). */
export function compileRoutes(methods: Iterable<MethodInfo>, plans: PlanCache): Route[] {
  const routes: Route[] = [];
  const seen = new Map<string, string>();
  for (const info of methods) {
    const desc = info.proto;
    const options = desc?.proto.options;
    if (desc === undefined || options === undefined || !hasExtension(options, http)) continue;
    const rule = getExtension(options, http);
    const name = `${info.service.typeName}.${desc.name}`;
    const option = `google.api.http of ${name}`;
    if (info.kind !== "unary" && info.kind !== "oneway") {
      throw new ConfigError(
        option,
        "a unary or one-way method (streaming is not served over REST)",
        info.kind,
      );
    }
    const bindings = [rule, ...rule.additionalBindings];
    bindings.forEach((r, index) => {
      const route = compileRule(info, r, index === 0 ? name : `${name}_${index}`, option, plans);
      const key = `${route.httpMethod} ${shapeOf(route.template)}`;
      const other = seen.get(key);
      if (other !== undefined) {
        throw new ConfigError(option, "a route no other method declares", `${key} (also ${other})`);
      }
      seen.set(key, name);
      routes.push(route);
    });
  }
  return routes;
}

function compileRule(
  info: MethodInfo,
  rule: HttpRule,
  operationId: string,
  option: string,
  cache: PlanCache,
): Route {
  let httpMethod: string;
  let pattern: string;
  switch (rule.pattern.case) {
    case undefined:
      throw new ConfigError(option, "a pattern (get, put, post, delete, patch or custom)", "none");
    case "custom":
      httpMethod = rule.pattern.value.kind.toUpperCase();
      pattern = rule.pattern.value.path;
      if (!/^[A-Z]+$/.test(httpMethod))
        throw new ConfigError(option, "a custom HTTP method name", httpMethod);
      break;
    default:
      httpMethod = METHOD_OF_CASE[rule.pattern.case];
      pattern = rule.pattern.value;
  }
  let template: PathTemplate;
  try {
    template = parsePathTemplate(pattern);
  } catch (e) {
    throw new ConfigError(option, `a path template (${(e as Error).message})`, pattern);
  }
  const proto = info.proto!;
  const input = proto.input;
  const output = proto.output;
  const inputPlan = cache.get(input);
  const excluded: string[] = [];

  const bindings: PathBinding[] = template.variables.map((variable) => {
    const plans = resolvePath(inputPlan, variable.fieldPath);
    const leaf = plans?.[plans.length - 1];
    if (plans === undefined || leaf === undefined) {
      throw new ConfigError(option, `a field of ${input.typeName} in ${pattern}`, variable.fieldPath);
    }
    if (leaf.conversion === "none" || leaf.repeated) {
      throw new ConfigError(
        option,
        `a singular scalar, enum or string-valued field in ${pattern}`,
        variable.fieldPath,
      );
    }
    const fieldPath = protoPath(plans);
    excluded.push(fieldPath);
    return { variable, plans, fieldPath };
  });

  let body: BodyPlan;
  if (rule.body === "") body = { kind: "none" };
  else if (rule.body === "*") body = { kind: "all" };
  else {
    const field = inputPlan.fields.get(rule.body);
    if (field === undefined)
      throw new ConfigError(`${option} body`, `a top-level field of ${input.typeName}`, rule.body);
    excluded.push(field.name);
    body = { kind: "field", field };
  }

  let responseBody: FieldPlan | undefined;
  if (rule.responseBody !== "") {
    responseBody = cache.get(output).fields.get(rule.responseBody);
    if (responseBody === undefined) {
      throw new ConfigError(
        `${option} response_body`,
        `a top-level field of ${output.typeName}`,
        rule.responseBody,
      );
    }
  }
  const first = template.segments[0];
  return {
    httpMethod,
    pattern,
    template,
    version: first?.kind === "literal" ? versionOfSegment(first.value) : undefined,
    method: info,
    operationId,
    input,
    output,
    inputPlan,
    body,
    responseBody,
    bindings,
    queryAllowed: body.kind !== "all",
    excluded,
    oneway: info.kind === "oneway",
  };
}

/** What a request resolved to. */
export type Resolution =
  | {
      readonly kind: "route";
      readonly route: Route;
      /** The path segments in the route's own template positions (the verb removed). */
      readonly segments: readonly string[];
      /** The version chosen through `Accept: application/vnd.weft+json; version=N`, if that is how. */
      readonly negotiated: string | undefined;
      /** Served through an unversioned alias (responses then vary on `Accept`). */
      readonly alias: boolean;
    }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] }
  | {
      readonly kind: "not-acceptable";
      readonly requested: readonly string[];
      readonly supported: readonly string[];
    }
  | { readonly kind: "not-in-default"; readonly version: string; readonly available: readonly string[] };

interface Candidate {
  readonly route: Route;
  readonly segments: readonly string[];
}

/**
 * Matches requests against the compiled routes: one trie of the declared templates, and one of their
 * unversioned aliases (`/v2/orders/{id}` also as `/orders/{id}`, selected by `Accept` or the default).
 */
export class Router {
  readonly #direct = new PathTrie<Route>();
  readonly #alias = new PathTrie<Route>();
  readonly #aliases: boolean;
  readonly #defaultVersion: string;
  /** Every version some route serves, oldest first. */
  readonly versions: readonly string[];

  constructor(routes: readonly Route[], options: { aliases: boolean; defaultVersion: string }) {
    this.#aliases = options.aliases;
    this.#defaultVersion = options.defaultVersion;
    const versions = new Set<string>();
    for (const route of routes) {
      this.#direct.insert(route.template.segments, route.template.verb, route);
      if (route.version !== undefined && route.template.segments.length > 1) {
        versions.add(route.version);
        this.#alias.insert(route.template.segments.slice(1), route.template.verb, route);
      }
    }
    this.versions = [...versions].sort(compareVersions);
  }

  resolve(httpMethod: string, segments: string[], want: VersionRequest): Resolution | undefined {
    const direct = match(this.#direct, segments);
    if (direct.length > 0) {
      const hit = direct.find((c) => c.route.httpMethod === httpMethod);
      if (hit === undefined) return { kind: "method-not-allowed", allow: allowed(direct) };
      const v = hit.route.version;
      let negotiated: string | undefined;
      if (v !== undefined && want.versions.length > 0) {
        if (want.versions.includes(v)) negotiated = v;
        else if (!want.anyVersion)
          return { kind: "not-acceptable", requested: want.versions, supported: [v] };
      }
      return { kind: "route", route: hit.route, segments: hit.segments, negotiated, alias: false };
    }
    if (!this.#aliases) return undefined;
    const aliased = match(this.#alias, segments);
    if (aliased.length === 0) return undefined;
    const available = [...new Set(aliased.map((c) => c.route.version!))].sort(compareVersions);
    let version: string | undefined;
    let negotiated: string | undefined;
    for (const v of want.versions) {
      if (available.includes(v)) {
        version = negotiated = v;
        break;
      }
    }
    if (version === undefined) {
      if (want.versions.length > 0 && !want.anyVersion) {
        return { kind: "not-acceptable", requested: want.versions, supported: available };
      }
      version = pickDefault(available, this.#defaultVersion);
      if (version === undefined) return { kind: "not-in-default", version: this.#defaultVersion, available };
    }
    const inVersion = aliased.filter((c) => c.route.version === version);
    const hit = inVersion.find((c) => c.route.httpMethod === httpMethod);
    if (hit === undefined) return { kind: "method-not-allowed", allow: allowed(inVersion) };
    // bindings index the declared template: put the version segment back in front
    return {
      kind: "route",
      route: hit.route,
      segments: [`v${version}`, ...hit.segments],
      negotiated,
      alias: true,
    };
  }

  /** The methods a path answers to, whatever the version (for `OPTIONS`). */
  allowedAt(segments: string[]): readonly string[] | undefined {
    const direct = match(this.#direct, segments);
    if (direct.length > 0) return allowed(direct);
    if (!this.#aliases) return undefined;
    const aliased = match(this.#alias, segments);
    return aliased.length > 0 ? allowed(aliased) : undefined;
  }
}

function match(trie: PathTrie<Route>, segments: string[]): Candidate[] {
  const last = segments[segments.length - 1];
  const colon = last === undefined ? -1 : last.lastIndexOf(":");
  const out: Candidate[] = [];
  if (colon > 0) {
    // a custom verb: `/v1/orders/42:cancel` → segments […, "42"], verb "cancel"
    const trimmed = segments.slice(0, -1);
    trimmed.push(last!.slice(0, colon));
    for (const route of trie.match(trimmed, last!.slice(colon + 1))) out.push({ route, segments: trimmed });
  }
  for (const route of trie.match(segments, "")) out.push({ route, segments });
  return out;
}

function allowed(candidates: readonly Candidate[]): string[] {
  const methods = new Set<string>();
  for (const c of candidates) {
    methods.add(c.route.httpMethod);
    if (c.route.httpMethod === "GET") methods.add("HEAD");
  }
  methods.add("OPTIONS");
  return [...methods];
}
