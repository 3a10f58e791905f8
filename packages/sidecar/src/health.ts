// grpc.health.v1.Health as the spec has it: Check answers a known service's
// status (NOT_FOUND for others), and Watch streams every change of it, so a
// client-side health check or a mesh stops routing to a draining sidecar.
import * as grpc from "@grpc/grpc-js";
import { grpcHealth } from "@microturn/protocol";

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = grpcHealth.HealthCheckResponse_ServingStatus;

type WatchCall = Parameters<grpcHealth.HealthServer["watch"]>[0];

export interface HealthService {
  impl: grpcHealth.HealthServer;
  /** The serving status may have changed: every watcher whose status did hears it. */
  changed(): void;
  /** Ends every Watch stream (the server is shutting down: an open one would hold it up). */
  close(): void;
}

/** `services`: the names this server serves ("" — the server as a whole — is always known). */
export function healthService(isServing: () => boolean, services: readonly string[]): HealthService {
  const known = new Set(["", ...services]);
  const watchers = new Map<WatchCall, grpcHealth.HealthCheckResponse_ServingStatus>();
  const statusOf = (service: string) => (!known.has(service) ? SERVICE_UNKNOWN : isServing() ? SERVING : NOT_SERVING);
  const send = (call: WatchCall) => {
    const status = statusOf(call.request.service);
    if (watchers.get(call) === status) return;
    watchers.set(call, status);
    call.write({ status });
  };
  return {
    impl: {
      check(call, callback) {
        const service = call.request.service;
        if (!known.has(service)) callback({ code: grpc.status.NOT_FOUND, details: `unknown service "${service}"` });
        else callback(null, { status: statusOf(service) });
      },
      watch(call) {
        const forget = () => watchers.delete(call);
        call.on("cancelled", forget);
        call.on("close", forget);
        call.on("error", forget);
        send(call);
      },
    },
    changed() {
      for (const call of watchers.keys()) send(call);
    },
    close() {
      for (const call of watchers.keys()) call.end();
      watchers.clear();
    },
  };
}
