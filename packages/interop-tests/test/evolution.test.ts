/**
 * API evolution: a client built from v1.0 of a contract talks to a server built from v1.1 (an added
 * field and enum value), and the reverse, over Weft's own protocol with every serializer and over
 * gRPC (REST is covered in packages/http/test/e2e/evolution.test.ts). Unknown fields are ignored,
 * missing ones take defaults, nothing fails.
 */
import {
  createClient,
  createServer,
  createTcpTransport,
  protoService,
  type SerializerName,
  type Server,
  type Transport,
} from "@weft/core";
import { createGrpcTransport, type GrpcListener, listenGrpc } from "@weft/grpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as v1 from "./gen/v1/evo/v1/thing_pb.ts";
import * as v11 from "./gen/v1_1/evo/v1/thing_pb.ts";

const V1 = protoService(v1.Things);
const V11 = protoService(v11.Things);
const serializers: SerializerName[] = ["protobuf", "json", "msgpack"];

let oldServer: Server;
let newServer: Server;
let toOld: Transport;
let toNew: Transport;
let grpcOld: GrpcListener;
let grpcNew: GrpcListener;
const transports: Record<string, { toOld: Transport; toNew: Transport }> = {};

beforeAll(async () => {
  newServer = createServer().register(V11, {
    getThing: (req) => ({
      id: req.id,
      name: "loom",
      status: v11.Status.ARCHIVED,
      color: req.includeColor ? "indigo" : "",
      tags: ["new"],
    }),
  });
  oldServer = createServer().register(V1, {
    getThing: (req) => ({ id: req.id, name: "loom", status: v1.Status.ACTIVE }),
  });
  toNew = createTcpTransport({ address: `127.0.0.1:${(await newServer.listen()).port}` });
  toOld = createTcpTransport({ address: `127.0.0.1:${(await oldServer.listen()).port}` });
  grpcNew = await listenGrpc(newServer);
  grpcOld = await listenGrpc(oldServer);
  transports.weft = { toOld, toNew };
  transports.grpc = {
    toOld: createGrpcTransport({ address: `127.0.0.1:${grpcOld.port}` }),
    toNew: createGrpcTransport({ address: `127.0.0.1:${grpcNew.port}` }),
  };
});

afterAll(async () => {
  await Promise.all(Object.values(transports).flatMap((t) => [t.toOld.close(), t.toNew.close()]));
  await Promise.all([grpcNew.close(), grpcOld.close()]);
  await Promise.all([newServer.shutdown({ timeoutMs: 100 }), oldServer.shutdown({ timeoutMs: 100 })]);
});

const cases = [
  ...serializers.map((serializer) => ["weft", serializer] as const),
  ["grpc", "protobuf"] as const,
  ["grpc", "json"] as const,
];

describe.each(cases)("over %s/%s", (protocol, serializer) => {
  const toNew = () => transports[protocol]!.toNew;
  const toOld = () => transports[protocol]!.toOld;

  it("an old client reads a newer server's response: new fields ignored, new enum value tolerated", async () => {
    const client = createClient(V1, toNew(), { serializer });
    const thing = await client.getThing({ id: "t-1" });
    expect(thing.id).toBe("t-1");
    expect(thing.name).toBe("loom");
    // An enum value the old client has never heard of: binary keeps the number (open enum);
    // JSON-based serializers drop the unrecognised name and leave the default.
    expect([2, v1.Status.UNSPECIFIED]).toContain(thing.status);
    expect(Object.keys(thing)).not.toContain("color");
  });

  it("a new client reads an older server's response: missing fields take their defaults", async () => {
    const client = createClient(V11, toOld(), { serializer });
    const thing = await client.getThing({ id: "t-2", includeColor: true });
    expect(thing).toMatchObject({ id: "t-2", name: "loom", status: v11.Status.ACTIVE, color: "", tags: [] });
  });

  it("an old server ignores a field only newer clients send", async () => {
    const client = createClient(V11, toOld(), { serializer });
    await expect(client.getThing({ id: "t-3", includeColor: true })).resolves.toMatchObject({ id: "t-3" });
  });
});
