// Unary StreamingSession calls as promises with a deadline and AbortSignal.
import { Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { EngineError } from "../errors.js";
import { toEngineError, type GrpcOperation } from "./errors.js";

export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface CallContext {
  operation: GrpcOperation;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  sessionId?: string | undefined;
}

export function deadlineIn(timeoutMs: number): Date {
  return new Date(Date.now() + timeoutMs);
}

export function unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, ctx: CallContext): Promise<Res> {
  if (ctx.signal?.aborted) {
    return Promise.reject(new EngineError("aborted", `sglang-grpc ${ctx.operation}: aborted before it started`, ctx.sessionId === undefined ? {} : { sessionId: ctx.sessionId }));
  }
  return new Promise<Res>((resolve, reject) => {
    const onAbort = (): void => call.cancel();
    const call = method(request, new Metadata(), { deadline: deadlineIn(ctx.timeoutMs) }, (error, response) => {
      ctx.signal?.removeEventListener("abort", onAbort);
      if (error) reject(toEngineError(error, ctx.operation, ctx.sessionId));
      else resolve(response);
    });
    ctx.signal?.addEventListener("abort", onAbort, { once: true });
  });
}
