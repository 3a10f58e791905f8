import { DeliveryMode } from "@microturn/protocol";
import { describe, expect, it } from "vitest";
import { createScriptedSession } from "../testing/scripted-session.js";
import { InvalidInputError } from "./session-errors.js";

describe("delegate delivery", () => {
  it("takes the short names and the enum, and refuses anything else", async () => {
    const session = await createScriptedSession({});
    await Promise.all([
      session.delegate("a", { delivery: "when_idle" }),
      session.delegate("b", { delivery: "silent" }),
      session.delegate("c", { delivery: DeliveryMode.DELIVERY_MODE_INTERRUPT }),
      session.delegate("d"),
    ]);
    expect(session.server.delegates.map((d) => d.delivery)).toEqual([
      DeliveryMode.DELIVERY_MODE_WHEN_IDLE,
      DeliveryMode.DELIVERY_MODE_SILENT,
      DeliveryMode.DELIVERY_MODE_INTERRUPT,
      DeliveryMode.DELIVERY_MODE_UNSPECIFIED,
    ]);
    expect(() => session.delegate("e", { delivery: "later" as never })).toThrow(InvalidInputError);
    await session.close();
  });
});
