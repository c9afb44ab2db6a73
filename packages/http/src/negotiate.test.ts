import { describe, expect, it } from "vitest";
import { compareVersions, parseAccept, pickDefault, versionOfSegment } from "./negotiate.ts";

describe("parseAccept", () => {
  it("takes any version without the vendor type", () => {
    for (const accept of [undefined, "", "application/json", "*/*", "text/html;q=0.9"]) {
      expect(parseAccept(accept)).toEqual({ versions: [], anyVersion: true });
    }
  });

  it("reads vendor versions by q then order, and whether a plain type is also acceptable", () => {
    expect(parseAccept("application/vnd.weft+json; version=2")).toEqual({
      versions: ["2"],
      anyVersion: false,
    });
    expect(parseAccept('Application/Vnd.Weft+JSON;Version="v3"')).toEqual({
      versions: ["3"],
      anyVersion: false,
    });
    expect(
      parseAccept(
        "application/vnd.weft+json;version=1;q=0.3, application/vnd.weft+json;version=2, application/json;q=0.1",
      ),
    ).toEqual({ versions: ["2", "1"], anyVersion: true });
    expect(parseAccept("application/vnd.weft+json;version=1;q=0")).toEqual({
      versions: [],
      anyVersion: true,
    });
    expect(parseAccept("application/vnd.weft+json")).toEqual({ versions: [], anyVersion: true });
  });
});

describe("versions", () => {
  it("recognises version segments", () => {
    expect(["v1", "v12", "v1beta1", "v2alpha", "version", "v", "V1", "v1x"].map(versionOfSegment)).toEqual([
      "1",
      "12",
      "1beta1",
      "2alpha",
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it("orders majors numerically and pre-releases before releases", () => {
    expect(["10", "2", "1", "2beta1", "2alpha1", "1beta2"].sort(compareVersions)).toEqual([
      "1beta2",
      "1",
      "2alpha1",
      "2beta1",
      "2",
      "10",
    ]);
  });

  it("picks the default among the versions a path has", () => {
    expect(pickDefault(["1", "2", "3beta1"], "oldest")).toBe("1");
    expect(pickDefault(["1", "2", "3beta1"], "latest")).toBe("2");
    expect(pickDefault(["3beta1", "3beta2"], "latest")).toBe("3beta2");
    expect(pickDefault(["1", "2"], "2")).toBe("2");
    expect(pickDefault(["2"], "1")).toBeUndefined();
  });
});
