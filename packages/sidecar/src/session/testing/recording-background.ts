// A SessionBackground that only records what it was asked to start: for tests
// of what a session delegates, without a background model. Test-only.
import type { DelegateRequest, SessionBackground } from "../ports.js";

export function recordingBackground(started: DelegateRequest[]): SessionBackground {
  return {
    start: (request) => {
      started.push(request);
      return `task_${started.length}`;
    },
    cancel: () => undefined,
    cancelAll: () => undefined,
    running: 0,
    onUpdate: () => undefined,
    idsMade: 0,
    release: () => [],
    adopt: () => undefined,
  };
}
