// What the demo's scripted user does, tick by tick (one tick = 200 ms of input).
export interface DemoStep {
  text?: string;
  /** The model must call this tool in this tick (InputChunk.tool_choice). */
  toolChoice?: string;
  delegate?: string;
  interrupt?: boolean;
}

export const DEMO_TICKS = 100;

export const DEMO_SCRIPT: Record<number, DemoStep> = {
  3: { text: "Hi there, can you hear me?" },
  12: { text: "What's the weather like in Lisbon today?", toolChoice: "get_weather" },
  22: { text: "Also, could you look up a good dinner spot near the river?", delegate: "Find three well-reviewed dinner restaurants near the river in Lisbon" },
  38: { text: "Tell me a long story about the sea." },
  44: { interrupt: true, text: "Wait, stop, sorry!" },
  60: { text: "Okay. What time is it?" },
  78: { text: "Thanks, that's all." },
};
