// A thin test driver over the generated gRPC client: sends events, collects
// server events, waits for the ones a test expects.
import * as grpc from "@grpc/grpc-js";
import { ClientEvent, InputChunk, InteractionClient, PROTOCOL_VERSION, type ServerEvent, type ServerEventName, type ServerEventPayload, type SessionConfig } from "@microturn/protocol";

export class TestClient {
  readonly events: ServerEvent[] = [];
  readonly client: InteractionClient;
  call: grpc.ClientDuplexStream<ClientEvent, ServerEvent>;
  status: grpc.ServiceError | undefined;
  ended = false;
  private waiters: (() => void)[] = [];

  /** A full SessionConfig: the defaults with `config` over them. */
  static config(config: Partial<SessionConfig> = {}): SessionConfig {
    return { ...DEFAULT_CONFIG, ...config };
  }

  constructor(address: string, metadata = new grpc.Metadata()) {
    this.client = new InteractionClient(address, grpc.credentials.createInsecure());
    this.call = this.open(metadata);
  }

  open(metadata = new grpc.Metadata()): grpc.ClientDuplexStream<ClientEvent, ServerEvent> {
    this.ended = false;
    this.status = undefined;
    const call = this.client.converse(metadata);
    call.on("data", (e: ServerEvent) => {
      this.events.push(e);
      this.notify();
    });
    call.on("error", (err: grpc.ServiceError) => {
      this.status = err;
      this.ended = true;
      this.notify();
    });
    call.on("end", () => {
      this.ended = true;
      this.notify();
    });
    this.call = call;
    return call;
  }

  send(event: ClientEvent["event"], eventId = ""): void {
    this.call.write(ClientEvent.fromPartial({ eventId, event }));
  }

  start(config: Partial<SessionConfig> = {}, protocolVersion = PROTOCOL_VERSION): void {
    this.send({ $case: "start", value: { protocolVersion, config: { ...DEFAULT_CONFIG, ...config } as SessionConfig } });
  }

  /** An input chunk at seq × 200 ms; `extra` overrides or adds fields. */
  input(seq: number, text = "", extra: Partial<InputChunk> = {}): void {
    this.send({ $case: "input", value: InputChunk.fromPartial({ seq, startMs: seq * 200, durationMs: 200, text, ...extra }) });
  }

  of<N extends ServerEventName>(name: N): ServerEventPayload<N>[] {
    return this.events.filter((e) => e.event?.$case === name).map((e) => e.event!.value as ServerEventPayload<N>);
  }

  async waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.event?.$case))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  waitCount<N extends ServerEventName>(name: N, count: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(() => this.of(name).length >= count, `${count} ${name} events`, timeoutMs);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

const DEFAULT_CONFIG: SessionConfig = {
  inputModalities: [],
  outputMode: 0,
  inputSampleRateHz: 16000,
  outputSampleRateHz: 16000,
  voice: "",
  instructions: "",
  tools: [],
  defaultDelivery: 0,
  maxOutputTokensPerTurn: 0,
  chunkDurationMs: 200,
  unsupportedInput: 0,
  labels: {},
  record: false,
};
