// grpc.health.v1.Health on a running sidecar: Check for the sidecar and its
// services, NOT_FOUND for others; Watch hears the drain (NOT_SERVING) and ends
// with the server, without holding its shutdown up.
import * as grpc from "@grpc/grpc-js";
import { grpcHealth } from "@microturn/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { startSidecar, type Sidecar } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { FakeEngine } from "./helpers/fake-engine.js";

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = grpcHealth.HealthCheckResponse_ServingStatus;
type HealthClient = InstanceType<typeof grpcHealth.HealthClient>;
let sidecar: Sidecar | undefined;
const clients: grpc.Client[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await sidecar?.shutdown();
  sidecar = undefined;
});

async function start(): Promise<HealthClient> {
  sidecar = await startSidecar(loadConfig(["--port", "0", "--metrics-port=-1", "--drain-ms", "300", "--background", "none"], {}), {
    engine: new FakeEngine(),
    logger: createLogger("error"),
  });
  const client = new grpcHealth.HealthClient(sidecar.server.grpcAddress, grpc.credentials.createInsecure());
  clients.push(client);
  return client;
}

function check(client: HealthClient, service: string): Promise<{ status?: number; code?: number }> {
  return new Promise((resolve) => client.check({ service }, (err: grpc.ServiceError | null, response?: { status: number }) => resolve(err ? { code: err.code } : { status: response!.status })));
}

describe("gRPC health", () => {
  it("Check answers the sidecar and its service; an unknown service is NOT_FOUND", async () => {
    const client = await start();
    expect(await check(client, "")).toEqual({ status: SERVING });
    expect(await check(client, "microturn.v1.Interaction")).toEqual({ status: SERVING });
    expect(await check(client, "no.such.Service")).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it("Watch streams SERVING, then NOT_SERVING when the sidecar drains, and ends with the server", async () => {
    const client = await start();
    const statuses: number[] = [];
    const unknown: number[] = [];
    const watch = client.watch({ service: "" });
    watch.on("data", (response: { status: number }) => statuses.push(response.status));
    const ended = new Promise<grpc.StatusObject>((resolve) => watch.on("status", resolve));
    watch.on("error", () => undefined);
    const other = client.watch({ service: "no.such.Service" });
    other.on("data", (response: { status: number }) => unknown.push(response.status));
    other.on("error", () => undefined);
    for (let waited = 0; (statuses.length === 0 || unknown.length === 0) && waited < 3000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(statuses).toEqual([SERVING]);
    expect(unknown).toEqual([SERVICE_UNKNOWN]);

    const stopping = sidecar!.shutdown();
    sidecar = undefined;
    for (let waited = 0; statuses.length < 2 && waited < 3000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(statuses).toEqual([SERVING, NOT_SERVING]);
    await stopping;
    // Ended by the server, not cut: an open Watch stream once held the shutdown up until it was forced.
    expect((await ended).code).toBe(grpc.status.OK);
  });
});
