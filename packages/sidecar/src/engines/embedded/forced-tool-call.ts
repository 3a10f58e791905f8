// A tool call the client asked for (InputChunk.tool_choice): the call's
// markup is fixed text evaluated into the sequence, and only the arguments are
// sampled, under a grammar llama.cpp builds from the tool's JSON schema. So
// the model still writes the arguments, and they always parse.
import type { GbnfJsonSchema, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from "../../tools/tool-call-parser.js";
import { EngineError } from "../errors.js";

/** Arguments longer than this many tokens are refused (a random model can ramble inside a string). */
export const MAX_ARGUMENT_TOKENS = 256;

export interface ForcedToolCallOptions {
  name: string;
  parametersJson: string;
  temperature: number;
  sessionId: string;
}

function parsesAsJson(text: string): boolean {
  if (!text.trimEnd().endsWith("}")) return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function schemaOf(options: ForcedToolCallOptions): GbnfJsonSchema {
  const source = options.parametersJson.trim() || '{"type":"object"}';
  try {
    const schema = JSON.parse(source) as unknown;
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) throw new Error("not a JSON object");
    return schema as GbnfJsonSchema;
  } catch (cause) {
    throw new EngineError("invalid_argument", `tool ${options.name}: parameters are not a JSON schema object (${(cause as Error).message})`, { sessionId: options.sessionId, cause });
  }
}

/**
 * Evaluates `<tool_call>{"name": …, "arguments": ` + sampled arguments + `}</tool_call>`
 * at the end of the sequence and returns the text. Every token is in the
 * sequence when it returns; on failure nothing past `start` is.
 */
/** The most tokens a forced call of `name` can add to the sequence: its markup and the longest arguments allowed. */
export function forcedCallMaxTokens(model: LlamaModel, name: string): number {
  return model.tokenize(`${TOOL_CALL_OPEN}{"name": ${JSON.stringify(name)}, "arguments": }${TOOL_CALL_CLOSE}`, true).length + MAX_ARGUMENT_TOKENS;
}

export async function forcedToolCall(model: LlamaModel, sequence: LlamaContextSequence, options: ForcedToolCallOptions): Promise<string> {
  const start = sequence.nextTokenIndex;
  let grammar;
  try {
    // The schema is the client's, known only at run time; llama.cpp's converter checks it.
    grammar = await model.llama.createGrammarForJsonSchema(schemaOf(options) as never);
  } catch (cause) {
    if (EngineError.isInstance(cause)) throw cause;
    throw new EngineError("invalid_argument", `tool ${options.name}: its JSON schema cannot be turned into a grammar: ${(cause as Error).message}`, {
      sessionId: options.sessionId,
      cause,
    });
  }
  const { LlamaGrammarEvaluationState } = await import("node-llama-cpp");
  const grammarEvaluationState = new LlamaGrammarEvaluationState({ model, grammar });
  const prefix = `${TOOL_CALL_OPEN}{"name": ${JSON.stringify(options.name)}, "arguments": `;
  const suffix = `}${TOOL_CALL_CLOSE}`;
  const argumentTokens: Token[] = [];
  let complete = false;
  try {
    // Evaluating the prefix samples the first argument token; each token
    // yielded is evaluated only when the generator resumes. llama.cpp's JSON
    // grammar lets the object be followed by any number of newlines, which a
    // random model happily writes, so the call ends as soon as the arguments
    // parse, and that last token is evaluated here.
    const generator = sequence.evaluate(model.tokenize(prefix, true), { temperature: options.temperature, grammarEvaluationState });
    let pending: Token | undefined;
    for await (const token of generator) {
      argumentTokens.push(token);
      pending = token;
      if (parsesAsJson(model.detokenize(argumentTokens))) {
        await generator.return();
        complete = true;
        break;
      }
      pending = undefined;
      if (argumentTokens.length >= MAX_ARGUMENT_TOKENS) {
        await generator.return();
        break;
      }
    }
    if (complete && pending !== undefined) await sequence.evaluateWithoutGeneratingNewTokens([pending]);
    // The generator also ends by itself when the grammar allows only end-of-generation.
    complete ||= parsesAsJson(model.detokenize(argumentTokens));
    if (complete) await sequence.evaluateWithoutGeneratingNewTokens(model.tokenize(suffix, true));
  } finally {
    if (!complete && sequence.nextTokenIndex > start) await sequence.eraseContextTokenRanges([{ start, end: sequence.nextTokenIndex }]);
  }
  if (!complete) {
    throw new EngineError("invalid_argument", `tool ${options.name}: the arguments did not close within ${MAX_ARGUMENT_TOKENS} tokens (give strings a maxLength)`, {
      sessionId: options.sessionId,
    });
  }
  return prefix + model.detokenize(argumentTokens) + suffix;
}
