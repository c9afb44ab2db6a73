import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../errors/weft-error.ts";
import { CONSOLE_LOGGER, loggerOption, SILENT_LOGGER } from "./telemetry.ts";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("CONSOLE_LOGGER", () => {
  it("writes a message alone as it is, and a message with pino's { err } as message then error", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const boom = new Error("boom");
    CONSOLE_LOGGER.warn("weft server: one line");
    CONSOLE_LOGGER.error({ err: boom, path: "/a.B/C" }, "weft server: /a.B/C:");
    CONSOLE_LOGGER.child({ service: "x" }).warn({ peer: "p" }, "with fields");
    expect(warn.mock.calls).toEqual([["weft server: one line"], ["with fields", { peer: "p" }]]);
    expect(error.mock.calls).toEqual([["weft server: /a.B/C:", boom]]);
  });
});

describe("loggerOption", () => {
  it("defaults, accepts a Logger, and names the option of anything else", () => {
    expect(loggerOption("logger", undefined, CONSOLE_LOGGER)).toBe(CONSOLE_LOGGER);
    expect(loggerOption("logger", SILENT_LOGGER, CONSOLE_LOGGER)).toBe(SILENT_LOGGER);
    expect(() => loggerOption("discovery.logger", { warn() {} }, CONSOLE_LOGGER)).toThrow(ConfigError);
    expect(() => loggerOption("discovery.logger", null, CONSOLE_LOGGER)).toThrow(/discovery\.logger/);
  });
});
