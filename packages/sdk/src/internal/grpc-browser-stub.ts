// Stands in for @grpc/grpc-js in the browser bundle only (see tsup.config.ts):
// the generated protocol module builds a gRPC client constructor when it
// loads, and the browser entry never uses it.
export class Client {}

export function makeGenericClientConstructor(): typeof Client {
  return class extends Client {};
}
