/*
 * Settings given per service and per method, resolved once per method: a policy's default, the
 * service's entry (`"catalog.v1.Catalog"`) over it, the method's (`"catalog.v1.Catalog/lookup"`)
 * over both.
 */
import type { MethodInfo } from "@weft/core";

/** Per-method settings: keys are a service's full name or `service/method` (the method's wire path without its leading `/`). */
export type PerMethod<T> = Readonly<Record<string, T>>;

/** Resolves `perMethod` against each method once, remembering the answer per `MethodInfo`. */
export class MethodSettings<T> {
  readonly #fallback: T;
  readonly #perMethod: PerMethod<T> | undefined;
  readonly #resolved = new WeakMap<MethodInfo, T>();

  constructor(fallback: T, perMethod: PerMethod<T> | undefined) {
    this.#fallback = fallback;
    this.#perMethod = perMethod;
  }

  /** The setting of `method`. */
  of(method: MethodInfo): T {
    if (this.#perMethod === undefined) return this.#fallback;
    let value = this.#resolved.get(method);
    if (value === undefined) {
      const own = Object.hasOwn(this.#perMethod, method.path.slice(1))
        ? this.#perMethod[method.path.slice(1)]
        : undefined;
      const service = Object.hasOwn(this.#perMethod, method.service.typeName)
        ? this.#perMethod[method.service.typeName]
        : undefined;
      value = own ?? service ?? this.#fallback;
      this.#resolved.set(method, value);
    }
    return value;
  }
}
