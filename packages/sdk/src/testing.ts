// @microturn/sdk/testing: what apps need to test against the SDK without a
// sidecar or GPU — a scripted session, a fake sidecar and a fake SGLang server on loopback.
export { createScriptedSession, ScriptedSession, type ScriptedSessionOptions } from "./testing/scripted-session.js";
export { FakeSidecar, startFakeSidecar, type FakePeer, type FakeSidecarOptions } from "./testing/fake-sidecar.js";
export { FakeSession, type FakeSessionScript, type FakeTaskStep } from "./testing/fake-session.js";
export { InMemoryTransport } from "./testing/in-memory-transport.js";
export type { WebSocketServerConstructor } from "./testing/fake-websocket.js";
export { FakeSglangServer, type FakeSglangServerOptions, type InjectedAbort, type RecordedRequest } from "./testing/sglang-server.js";
