import { describe, expect, it } from "vitest";
import { ErrorCode } from "@microturn/protocol";
import {
  AbortedError,
  AbortError,
  APIError,
  BadRequestError,
  ConnectionError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalServerError,
  MicroturnError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  TimeoutError,
  UnauthenticatedError,
  UnavailableError,
} from "./error.js";
import { errorFromGrpcStatus, errorFromSessionError, GrpcCode } from "./grpc-error.js";
import { InvalidInputError, ProtocolVersionError, SessionClosedError } from "./session-errors.js";

describe("error hierarchy", () => {
  it("brands survive a copy of the class (isInstance without instanceof)", () => {
    const error = new NotFoundError("gone", { grpcCode: 5, status: 404, sessionId: "s1", requestId: "r1" });
    expect(NotFoundError.isInstance(error)).toBe(true);
    expect(APIError.isInstance(error)).toBe(true);
    expect(MicroturnError.isInstance(error)).toBe(true);
    expect(UnavailableError.isInstance(error)).toBe(false);
    expect(MicroturnError.isInstance(new Error("plain"))).toBe(false);
    expect(MicroturnError.isInstance(null)).toBe(false);
    // A structurally identical object from "another copy" of the SDK: only the brand list matters.
    const foreign = Object.defineProperty({}, Symbol.for("microturn.error.brands"), { value: ["NotFoundError", "APIError", "MicroturnError"] });
    expect(NotFoundError.isInstance(foreign)).toBe(true);
    expect([error.name, error.status, error.grpcCode, error.sessionId, error.requestId, error.retryable]).toEqual([
      "NotFoundError",
      404,
      5,
      "s1",
      "r1",
      false,
    ]);
  });

  it("names every client-side class", () => {
    for (const [ctor, name] of [
      [ConnectionError, "ConnectionError"],
      [TimeoutError, "TimeoutError"],
      [AbortError, "AbortError"],
      [InvalidInputError, "InvalidInputError"],
      [SessionClosedError, "SessionClosedError"],
    ] as const) {
      const error = new ctor("m", { cause: "c" });
      expect(error.name).toBe(name);
      expect(error.cause).toBe("c");
      expect(ctor.isInstance(error)).toBe(true);
      expect(MicroturnError.isInstance(error)).toBe(true);
    }
    expect(new ProtocolVersionError("1.0", "2.0").message).toMatch(/2\.0.*1\.0/);
  });
});

describe("errorFromGrpcStatus", () => {
  const cases: Array<[number, { isInstance(v: unknown): boolean }, number, boolean]> = [
    [GrpcCode.CANCELLED, AbortedError, 499, true],
    [GrpcCode.UNKNOWN, InternalServerError, 500, false],
    [GrpcCode.INVALID_ARGUMENT, BadRequestError, 400, false],
    [GrpcCode.DEADLINE_EXCEEDED, DeadlineExceededError, 504, true],
    [GrpcCode.NOT_FOUND, NotFoundError, 404, false],
    [GrpcCode.ALREADY_EXISTS, BadRequestError, 409, false],
    [GrpcCode.PERMISSION_DENIED, PermissionDeniedError, 403, false],
    [GrpcCode.RESOURCE_EXHAUSTED, ResourceExhaustedError, 429, true],
    [GrpcCode.FAILED_PRECONDITION, FailedPreconditionError, 400, false],
    [GrpcCode.ABORTED, AbortedError, 409, true],
    [GrpcCode.OUT_OF_RANGE, OutOfRangeError, 400, false],
    [GrpcCode.UNIMPLEMENTED, BadRequestError, 501, false],
    [GrpcCode.INTERNAL, InternalServerError, 500, false],
    [GrpcCode.UNAVAILABLE, UnavailableError, 503, true],
    [GrpcCode.DATA_LOSS, InternalServerError, 500, false],
    [GrpcCode.UNAUTHENTICATED, UnauthenticatedError, 401, false],
  ];
  it.each(cases)("code %i maps to its class, HTTP status and retryability", (code, ctor, status, retryable) => {
    const error = errorFromGrpcStatus({ code, details: "why" });
    expect(ctor.isInstance(error)).toBe(true);
    expect([error.grpcCode, error.status, error.retryable, error.message]).toEqual([code, status, retryable, "why"]);
  });

  it("reads request and session ids from trailing metadata", () => {
    const metadata = { get: (key: string) => (key === "x-request-id" ? ["req-9"] : key === "x-microturn-session-id" ? ["s-3"] : []) };
    const error = errorFromGrpcStatus({ code: GrpcCode.INTERNAL, details: "", metadata });
    expect([error.requestId, error.sessionId, error.message]).toEqual(["req-9", "s-3", "gRPC status 13"]);
    expect(InternalServerError.isInstance(errorFromGrpcStatus({ code: 99 }))).toBe(true);
  });
});

describe("errorFromSessionError", () => {
  it("maps each ErrorCode to a typed error and keeps the original", () => {
    const expected: Record<number, string> = {
      [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: "BadRequestError",
      [ErrorCode.ERROR_CODE_FAILED_PRECONDITION]: "FailedPreconditionError",
      [ErrorCode.ERROR_CODE_SEQ_GAP]: "OutOfRangeError",
      [ErrorCode.ERROR_CODE_UNSUPPORTED_MODALITY]: "BadRequestError",
      [ErrorCode.ERROR_CODE_TOO_LARGE]: "BadRequestError",
      [ErrorCode.ERROR_CODE_QUEUE_FULL]: "ResourceExhaustedError",
      [ErrorCode.ERROR_CODE_NOT_FOUND]: "NotFoundError",
      [ErrorCode.ERROR_CODE_ENGINE]: "InternalServerError",
      [ErrorCode.ERROR_CODE_BACKGROUND_UNAVAILABLE]: "UnavailableError",
      [ErrorCode.ERROR_CODE_TIMEOUT]: "DeadlineExceededError",
      [ErrorCode.ERROR_CODE_RESOURCE_EXHAUSTED]: "ResourceExhaustedError",
      [ErrorCode.ERROR_CODE_VERSION_MISMATCH]: "FailedPreconditionError",
      [ErrorCode.ERROR_CODE_INTERNAL]: "InternalServerError",
      [ErrorCode.ERROR_CODE_UNSPECIFIED]: "InternalServerError",
    };
    for (const [code, name] of Object.entries(expected)) {
      const raw = { code: Number(code), message: "m", retryable: true, seq: 4, eventId: "e", fatal: false };
      const error = errorFromSessionError(raw, { sessionId: "s" });
      expect(error.name, `code ${code}`).toBe(name);
      expect(error.sessionError).toBe(raw);
      expect([error.retryable, error.fatal, error.sessionId]).toEqual([true, false, "s"]);
    }
  });
});
