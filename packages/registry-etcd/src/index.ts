/**
 * @weft/registry-etcd: the Weft `Registry` on etcd (leases with keepalive, watches that resume from
 * the last revision after a reconnect).
 */
export { createEtcdRegistry, ETCD_REGISTRY_DEFAULTS, type EtcdRegistryOptions } from "./etcd-registry.ts";
export { etcdScheme } from "./scheme.ts";
