/* Run by balancer.test.ts in a separate process: prints the node of each sample key as JSON. */
import { consistentHash } from "./hash.ts";

const addresses = JSON.parse(process.argv[2] ?? "[]") as string[];
const nodes = addresses.map((address) => ({ address, backingOff: false }));
const ch = consistentHash({ key: (call) => call.headers.get("user") ?? undefined });
const keys = Array.from({ length: 200 }, (_, i) => `user-${i}`);
const out = keys.map((k) => {
  const call = { headers: new Map([["user", k]]) } as never;
  return ch.pick(nodes, call)?.node.address;
});
process.stdout.write(JSON.stringify(out));
