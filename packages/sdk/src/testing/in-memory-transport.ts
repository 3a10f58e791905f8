// A Transport wired straight into a FakeSidecar, no sockets: every event still
// goes through protobuf encode/decode and arrives asynchronously, as on a wire.
import { ClientEvent, ServerEvent } from "@microturn/protocol";
import type { Transport, TransportHandlers, TransportStream } from "../core/transport.js";
import type { FakePeer, FakeSidecar } from "./fake-sidecar.js";
import { UnavailableError } from "../core/error.js";

export class InMemoryTransport implements Transport {
  constructor(
    private readonly sidecar: FakeSidecar,
    private readonly apiKey?: string,
  ) {}

  open(handlers: TransportHandlers): TransportStream {
    let clientOpen = true;
    let serverOpen = true;
    const deliver = (fn: () => void): void => {
      setImmediate(() => {
        if (clientOpen) fn();
      });
    };
    const peer: FakePeer = {
      send: (event) => {
        if (!serverOpen) return;
        const copy = ServerEvent.decode(ServerEvent.encode(event).finish());
        deliver(() => handlers.onEvent(copy));
      },
      end: () => {
        if (!serverOpen) return;
        serverOpen = false;
        deliver(() => {
          clientOpen = false;
          handlers.onClose();
        });
      },
      fail: (code, message) => {
        if (!serverOpen) return;
        serverOpen = false;
        deliver(() => {
          clientOpen = false;
          handlers.onClose(new UnavailableError(message, { grpcCode: code, retryable: true }));
        });
      },
    };
    const server = this.sidecar.handlePeer(peer, this.apiKey);
    return {
      send: (event) => {
        if (!clientOpen || !serverOpen) return;
        const copy = ClientEvent.decode(ClientEvent.encode(event).finish());
        setImmediate(() => {
          if (serverOpen) server.onEvent(copy);
        });
      },
      end: () => undefined,
      cancel: () => {
        clientOpen = false;
        if (serverOpen) {
          serverOpen = false;
          server.onClose();
        }
      },
    };
  }

  close(): void {}
}
