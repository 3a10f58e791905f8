// Wire shapes of SGLang's native HTTP API as of the pinned version (0.5.23):
// python/sglang/srt/managers/io_struct.py and sglang/api/v1/api_types.py.
// snake_case fields are SGLang's own spelling; see docs/sglang-http.md.

/** `sampling_params`. SGLang rejects unknown keys here (HTTP 400). */
export interface SglangSamplingParams {
  max_new_tokens?: number;
  min_new_tokens?: number;
  stop?: string | string[];
  stop_token_ids?: number[];
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  repetition_penalty?: number;
  ignore_eos?: boolean;
  skip_special_tokens?: boolean;
  no_stop_trim?: boolean;
  sampling_seed?: number;
  json_schema?: string;
  regex?: string;
}

/** `session_params` of a `/generate` request. */
export interface SglangSessionParams {
  id: string;
  /** Request within a (non-streaming) session to continue from. */
  rid?: string;
  /** Non-streaming sessions only: keep the first `offset` tokens, then append. */
  offset?: number;
  /** Non-streaming sessions only. */
  replace?: boolean;
  /** Non-streaming sessions only. */
  drop_previous_output?: boolean;
}

/** Body of `POST /generate` (single request; batches are not exposed). */
export interface SglangGenerateRequest {
  text?: string;
  input_ids?: number[];
  rid?: string;
  sampling_params?: SglangSamplingParams;
  session_params?: SglangSessionParams;
  return_logprob?: boolean;
  routing_key?: string;
  priority?: number;
}

/** `meta_info.finish_reason`; `null` on intermediate stream events. */
export type SglangFinishReason =
  | { type: "stop"; matched?: number | number[] | string | null }
  | { type: "length"; length?: number }
  | { type: "abort"; message?: string; status_code?: number | null; err_type?: string | null };

export interface SglangMetaInfo {
  /** The request id (rid). */
  id: string;
  finish_reason: SglangFinishReason | null;
  /** Input length of this request; in a session, the whole sequence before this request's output. */
  prompt_tokens: number;
  /** Output tokens so far (cumulative, also with incremental streaming output). */
  completion_tokens: number;
  /** Prompt tokens served from cache (in a streaming session: the session's kept KV). */
  cached_tokens: number;
  e2e_latency?: number;
  [key: string]: unknown;
}

/** One `/generate` result, or one SSE event of a streamed one. */
export interface SglangGenerateOutput {
  /** Cumulative text, or only the new text with `--incremental-streaming-output`. */
  text?: string;
  output_ids?: number[];
  meta_info: SglangMetaInfo;
}

/** `GET /model_info` (0.5.23; `/get_model_info` is its deprecated alias). */
export interface SglangModelInfo {
  model_path: string;
  served_model_name?: string;
  tokenizer_path?: string | null;
  is_generation: boolean;
  weight_version?: string | null;
  has_image_understanding?: boolean;
  has_audio_understanding?: boolean;
  model_type?: string | null;
  architectures?: string[] | null;
  [key: string]: unknown;
}

/** `GET /server_info`: resolved server args plus scheduler info. Only the fields the SDK reads are typed. */
export interface SglangServerInfo {
  version?: string;
  context_length?: number | null;
  max_total_num_tokens?: number;
  max_req_input_len?: number;
  enable_streaming_session?: boolean;
  incremental_streaming_output?: boolean;
  [key: string]: unknown;
}
