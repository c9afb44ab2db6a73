/** Request bodies for the REST gateway: content type check, reading with a size cap. */
import type { IncomingMessage } from "node:http";
import { Code, Reason, WeftError } from "@weft/core";
import { RestError } from "./errors.ts";
import { JSON_TYPE } from "./respond.ts";

/** Accepts JSON (`application/json`, `…+json`) or no content type; anything else is a 415. */
export function checkContentType(value: string | undefined): void {
  if (value === undefined) return;
  const semi = value.indexOf(";");
  const type = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (type === JSON_TYPE || type.endsWith("+json")) return;
  throw new RestError(
    415,
    Code.INVALID_ARGUMENT,
    Reason.UNSUPPORTED_MEDIA_TYPE,
    `request bodies must be JSON (Content-Type: application/json), got ${JSON.stringify(type)}`,
  );
}

/**
 * Reads the body up to `limit` bytes; past it, a 413 (the rest is discarded by node:http, not
 * buffered). A client that closes the connection mid-body is `CANCELLED`. Every listener it adds is
 * removed when it settles; to stop waiting earlier (deadline, shutdown), race it with `settleWithin`.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(
        new WeftError(Code.CANCELLED, `request body aborted: ${e.message}`, { reason: Reason.CANCELLED }),
      );
    };
    const onAborted = () => onError(new Error("the client closed the connection"));
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onAborted);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onAborted);
  });
}

function tooLarge(limit: number): RestError {
  return new RestError(
    413,
    Code.RESOURCE_EXHAUSTED,
    Reason.MESSAGE_TOO_LARGE,
    `request body larger than ${limit} bytes`,
    { headers: { connection: "close" } },
  );
}
