// Client-side failures of a session: bad input caught before it reaches the
// wire, calls on a closed session, and a server speaking another protocol.
import { MicroturnError } from "./error.js";

/** An SDK call got a value it cannot send (bad sample rate, NaN samples, wrong frame size). */
export class InvalidInputError extends MicroturnError {
  static override readonly brand: string = "InvalidInputError";
}

/** The session is closed (or was never connected); open a new one. */
export class SessionClosedError extends MicroturnError {
  static override readonly brand: string = "SessionClosedError";
}

/** The server speaks a different major protocol version. */
export class ProtocolVersionError extends MicroturnError {
  static override readonly brand: string = "ProtocolVersionError";
  readonly clientVersion: string;
  readonly serverVersion: string;

  constructor(clientVersion: string, serverVersion: string) {
    super(
      `server speaks microturn protocol ${serverVersion || "(none)"}, this SDK speaks ${clientVersion}; ` +
        "upgrade the SDK or the sidecar so the major versions match",
    );
    this.clientVersion = clientVersion;
    this.serverVersion = serverVersion;
  }
}
