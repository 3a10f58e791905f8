// @microturn/sdk/testing: what apps need to test against the SDK without a GPU.
export { FakeSglangServer, type FakeSglangServerOptions, type InjectedAbort, type RecordedRequest } from "./testing/sglang-server.js";
