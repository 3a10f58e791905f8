// Adapts the tool machinery (parser, server registry, client broker) to the
// session's SessionTools port.
import { ErrorCode, type ServerEvent, type ToolSpec } from "@microturn/protocol";
import { followSignal } from "../abort.js";
import { SessionFault } from "../errors.js";
import type { PendingCallState, SessionTools, ToolCallExtractor, ToolOutcome as PortOutcome } from "../session/ports.js";
import { ClientToolBroker } from "./client-broker.js";
import { ToolError, type ToolOutcome } from "./errors.js";
import type { ServerToolRegistry } from "./registry.js";
import { ToolCallParser, type ToolCallParseResult } from "./tool-call-parser.js";

function toPort(outcome: ToolOutcome): PortOutcome {
  return outcome.isError ? { ok: false, error: outcome.outputJson } : { ok: true, output: outcome.outputJson };
}

export interface RegistrySessionToolsOptions {
  registry: ServerToolRegistry;
  /** One per session; a fresh broker when absent. */
  broker?: ClientToolBroker;
}

export class RegistrySessionTools implements SessionTools {
  private readonly registry: ServerToolRegistry;
  private readonly broker: ClientToolBroker;
  private readonly inFlight = new Set<AbortController>();

  constructor(options: RegistrySessionToolsOptions) {
    this.registry = options.registry;
    this.broker = options.broker ?? new ClientToolBroker();
  }

  createExtractor(): ToolCallExtractor {
    const parser = new ToolCallParser();
    const extracted = ({ text, calls, errors }: ToolCallParseResult) => ({ text, calls, errors: errors.map((e) => e.message) });
    return {
      push: (delta) => extracted(parser.push(delta)),
      settle: () => extracted(parser.settle()),
      get inCall() {
        return parser.inCall;
      },
      abandon: () => parser.abandon(),
      checkpoint: () => parser.checkpoint(),
    };
  }

  isServerTool(name: string): boolean {
    return this.registry.has(name);
  }

  async runServerTool(name: string, argumentsJson: string, signal: AbortSignal): Promise<PortOutcome> {
    // cancelAll() must reach server tools too, not only the caller's signal.
    const { controller, release } = followSignal(signal);
    this.inFlight.add(controller);
    try {
      return toPort(await this.registry.execute(name, argumentsJson, { signal: controller.signal }));
    } finally {
      release();
      this.inFlight.delete(controller);
    }
  }

  async callClientTool(spec: ToolSpec, argumentsJson: string, seq: number, send: (event: NonNullable<ServerEvent["event"]>) => void): Promise<PortOutcome> {
    const call = this.broker.call(spec.name, argumentsJson, { seq, ...(spec.timeoutMs > 0 ? { timeoutMs: spec.timeoutMs } : {}) });
    send({ $case: "toolCall", value: call.toolCall });
    return toPort(await call.result);
  }

  resolveClientTool(callId: string, outputJson: string, isError: boolean): void {
    try {
      this.broker.resolve({ callId, outputJson, isError });
    } catch (err) {
      if (ToolError.isInstance(err)) throw new SessionFault(ErrorCode.ERROR_CODE_NOT_FOUND, err.message, { cause: err });
      throw err;
    }
  }

  get callsMade(): number {
    return this.broker.callsMade;
  }

  pendingClientCalls(): PendingCallState[] {
    return this.broker.pendingCalls();
  }

  adoptClientCalls(callsMade: number, calls: readonly PendingCallState[]): Promise<PortOutcome>[] {
    return this.broker.adopt(callsMade, calls).map((result) => result.then(toPort));
  }

  cancelAll(): void {
    this.broker.cancelAll();
    for (const controller of this.inFlight) controller.abort();
  }
}
