/**
 * @weft/http: the REST/JSON gateway of a Weft server, on `node:http`. Routes come from the
 * `google.api.http` annotations of proto services; JSON is the proto3 canonical JSON mapping.
 */
export { httpStatusOf, RestError, type RestErrorBody, type RestErrorDetail } from "./errors.ts";
export { listenRest, type RestCloseOptions, type RestListener, type RestListenOptions } from "./listen.ts";
export { VENDOR_TYPE } from "./negotiate.ts";
export type { OpenApiInfo, OpenApiObject } from "./openapi.ts";
export {
  type CorsOptions,
  createRestHandler,
  type RestHandler,
  type RestOptions,
  type RestRoute,
} from "./rest-handler.ts";
