// What a test started and closes after it (afterEach(() => started.close())):
// SDK sessions first, then a bare server, then a whole sidecar. Test-only.
import type { InteractionSession } from "@microturn/sdk";
import type { Sidecar } from "../../src/app.js";
import type { RunningServer } from "../../src/server.js";

export class Started {
  readonly sessions: InteractionSession[] = [];
  server: RunningServer | undefined;
  sidecar: Sidecar | undefined;

  async close(): Promise<void> {
    for (const s of this.sessions.splice(0)) await s.close().catch(() => undefined);
    await this.server?.close();
    this.server = undefined;
    await this.sidecar?.shutdown();
    this.sidecar = undefined;
  }
}
