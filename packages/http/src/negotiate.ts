/** The media type that selects an API version: `Accept: application/vnd.weft+json; version=2`. */
export const VENDOR_TYPE = "application/vnd.weft+json";

/** What an `Accept` header asks for, as far as versions go. */
export interface VersionRequest {
  /** Versions asked for with the vendor type, most preferred first (by `q`, then order). */
  readonly versions: readonly string[];
  /**
   * True when the client also takes a representation without a version: plain JSON, a wildcard, the
   * vendor type without `version`, or any other type (only the vendor type's versions are binding).
   */
  readonly anyVersion: boolean;
}

const VENDOR_HINT = /vnd\.weft/i;
const ANY: VersionRequest = { versions: [], anyVersion: true };

/** Reads the version preferences of an `Accept` header; cheap when the vendor type is absent. */
export function parseAccept(accept: string | undefined): VersionRequest {
  if (accept === undefined || !VENDOR_HINT.test(accept)) return ANY;
  const wanted: { version: string; q: number; order: number }[] = [];
  let anyVersion = false;
  let order = 0;
  for (const range of accept.split(",")) {
    const parts = range.split(";");
    const type = parts[0]!.trim().toLowerCase();
    let version: string | undefined;
    let q = 1;
    for (let k = 1; k < parts.length; k++) {
      const p = parts[k]!;
      const eq = p.indexOf("=");
      if (eq < 0) continue;
      const name = p.slice(0, eq).trim().toLowerCase();
      const value = p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, "$1");
      if (name === "version") version = value.replace(/^v/i, "");
      else if (name === "q") q = Number(value);
    }
    if (!(q > 0)) continue;
    if (type === VENDOR_TYPE && version !== undefined && version !== "") {
      wanted.push({ version, q, order: order++ });
    } else if (type !== "") {
      anyVersion = true;
    }
  }
  wanted.sort((a, b) => b.q - a.q || a.order - b.order);
  return { versions: wanted.map((w) => w.version), anyVersion: anyVersion || wanted.length === 0 };
}

const VERSION_SEGMENT = /^v([0-9]+)((?:alpha|beta)[0-9]*)?$/;

/** The API version a path segment names (`v2` → `"2"`, `v1beta1` → `"1beta1"`), or undefined. */
export function versionOfSegment(segment: string): string | undefined {
  return VERSION_SEGMENT.test(segment) ? segment.slice(1) : undefined;
}

/** Orders versions: by major number, pre-releases (`1beta1`) before the release (`1`). */
export function compareVersions(a: string, b: string): number {
  const pa = /^([0-9]+)(.*)$/.exec(a);
  const pb = /^([0-9]+)(.*)$/.exec(b);
  const ma = pa === null ? 0 : Number(pa[1]);
  const mb = pb === null ? 0 : Number(pb[1]);
  if (ma !== mb) return ma - mb;
  const sa = pa?.[2] ?? a;
  const sb = pb?.[2] ?? b;
  if (sa === sb) return 0;
  if (sa === "") return 1;
  if (sb === "") return -1;
  return sa < sb ? -1 : 1;
}

/** True for a release version (`2`), false for a pre-release (`2beta1`). */
export function isStable(version: string): boolean {
  return /^[0-9]+$/.test(version);
}

/**
 * The version an unversioned path serves when the client asks for none: `oldest` or `latest` stable
 * version among `available` (pre-releases only when there is no release), or a fixed one (undefined
 * when the path does not exist in it).
 */
export function pickDefault(available: readonly string[], policy: string): string | undefined {
  if (policy !== "oldest" && policy !== "latest") return available.includes(policy) ? policy : undefined;
  const stable = available.filter(isStable);
  const pool = (stable.length > 0 ? stable : [...available]).sort(compareVersions);
  return policy === "oldest" ? pool[0] : pool[pool.length - 1];
}
