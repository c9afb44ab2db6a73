/** Where both REST systems answer the echo: the `google.api.http` rule of `bench.v1.Echo/Echo`. */
export const ECHO_ROUTE = "/v1/echo";
