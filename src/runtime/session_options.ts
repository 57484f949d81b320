/**
 * Session options: from a config's plain object to {@link SessionOptions},
 * and from those to onnxruntime-node's session options.
 *
 * What onnxruntime-node 1.29.0 can pass on: the session-level options
 * (intraOpNumThreads, enableCpuMemArena, graph optimization, execution mode)
 * and, for the CUDA execution provider, `deviceId` only: its native binding
 * (js/node/src/session_options_helper.cc) creates OrtCUDAProviderOptionsV2
 * with ORT's defaults and sets nothing but device_id. So the CUDA provider
 * options (cudnn_conv_algo_search, use_tf32, prefer_nhwc,
 * arena_extend_strategy) always have ORT's defaults with this binding; asking
 * for another value throws instead of being silently ignored.
 */
import type * as ort from "onnxruntime-node";
import type { SessionOptions } from "./session.ts";
import { resolveSpinning, resolveThreads } from "./threads.ts";

/** cuDNN convolution algorithm search, as ORT names it. */
export type CudnnConvAlgoSearch = "EXHAUSTIVE" | "HEURISTIC" | "DEFAULT";
/** How the CUDA memory arena grows, as ORT names it. */
export type ArenaExtendStrategy = "kNextPowerOfTwo" | "kSameAsRequested";

/**
 * ORT's defaults for the CUDA provider options (onnxruntime 1.29,
 * OrtCUDAProviderOptionsV2). They are the values in force with
 * onnxruntime-node 1.29.0; which are fastest for our training step is to be
 * measured on a GPU.
 */
export const CUDA_OPTION_DEFAULTS = {
  cudnnConvAlgoSearch: "EXHAUSTIVE" as CudnnConvAlgoSearch,
  useTf32: true,
  preferNhwc: false,
  arenaExtendStrategy: "kNextPowerOfTwo" as ArenaExtendStrategy,
} as const;

/**
 * Whether the pinned onnxruntime-node forwards CUDA provider options other
 * than deviceId. False for 1.29.0 (see the module comment); set it to true
 * only after checking a newer binding's session_options_helper.cc.
 */
export const BINDING_FORWARDS_CUDA_OPTIONS = false;

const CUDA_OPTION_NAMES: Record<keyof typeof CUDA_OPTION_DEFAULTS, string> = {
  cudnnConvAlgoSearch: "cudnn_conv_algo_search",
  useTf32: "use_tf32",
  preferNhwc: "prefer_nhwc",
  arenaExtendStrategy: "arena_extend_strategy",
};

/** The CUDA provider options in ORT's names and string values, defaults filled in. */
export function cudaProviderOptions(options: SessionOptions): Record<string, string> {
  return {
    device_id: String(options.deviceId ?? 0),
    cudnn_conv_algo_search: options.cudnnConvAlgoSearch ?? CUDA_OPTION_DEFAULTS.cudnnConvAlgoSearch,
    use_tf32: (options.useTf32 ?? CUDA_OPTION_DEFAULTS.useTf32) ? "1" : "0",
    prefer_nhwc: (options.preferNhwc ?? CUDA_OPTION_DEFAULTS.preferNhwc) ? "1" : "0",
    arena_extend_strategy: options.arenaExtendStrategy ?? CUDA_OPTION_DEFAULTS.arenaExtendStrategy,
  };
}

/**
 * Why `value` of CUDA provider option `key` cannot be applied with the pinned binding, or null
 * when it can (it is ORT's default, absent, or the binding forwards the option).
 */
export function unappliedCudaOption(
  key: keyof typeof CUDA_OPTION_DEFAULTS,
  value: unknown,
): string | null {
  if (BINDING_FORWARDS_CUDA_OPTIONS) return null;
  const fallback = CUDA_OPTION_DEFAULTS[key];
  if (value === undefined || value === fallback) return null;
  return `${
    JSON.stringify(value)
  } cannot be applied: onnxruntime-node 1.29.0 passes only deviceId ` +
    `to the CUDA execution provider, so ORT's default ${JSON.stringify(fallback)} is in force; ` +
    `remove the key or set it to ${JSON.stringify(fallback)}`;
}

/** Throws, naming the option, when a CUDA provider option asks for what the binding cannot pass on. */
export function assertCudaOptionsApplicable(options: SessionOptions): void {
  if (BINDING_FORWARDS_CUDA_OPTIONS) return;
  for (
    const [key, ortName] of Object.entries(CUDA_OPTION_NAMES) as [
      keyof typeof CUDA_OPTION_DEFAULTS,
      string,
    ][]
  ) {
    const problem = unappliedCudaOption(key, options[key]);
    if (problem !== null) throw new Error(`${ortName}: ${problem}`);
  }
  for (const key of Object.keys(options.cudaOptions ?? {})) {
    throw new Error(
      `cudaOptions.${key} cannot be applied: onnxruntime-node 1.29.0 passes only deviceId to the CUDA ` +
        `execution provider`,
    );
  }
}

/** onnxruntime-node session options for {@link SessionOptions} (the CUDA checks are the caller's). */
export function ortSessionOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  const device = options.device ?? "cpu";
  const spinning = resolveSpinning(options.spinning);
  return {
    graphOptimizationLevel: options.optimization ?? "all",
    intraOpNumThreads: resolveThreads(options.threads, device),
    extra: { session: { intra_op: { allow_spinning: spinning ? "1" : "0" } } },
    interOpNumThreads: 1,
    executionMode: "sequential",
    enableCpuMemArena: options.memoryArena ?? true,
    enableMemPattern: options.memoryPattern ?? false,
    executionProviders: device === "cuda"
      ? [{ name: "cuda", deviceId: options.deviceId ?? 0 }, "cpu"]
      : ["cpu"],
  };
}

/** The runtime keys a config may set, as written in YAML. */
export interface RuntimeConfig {
  device?: unknown;
  threads?: unknown;
  device_id?: unknown;
  cudnn_conv_algo_search?: unknown;
  use_tf32?: unknown;
  prefer_nhwc?: unknown;
  memory_arena?: unknown;
  memory_pattern?: unknown;
  blocked_convs?: unknown;
  arena_extend_strategy?: unknown;
}

const RUNTIME_KEYS = [
  "device",
  "threads",
  "device_id",
  "cudnn_conv_algo_search",
  "use_tf32",
  "prefer_nhwc",
  "memory_arena",
  "memory_pattern",
  "blocked_convs",
  "arena_extend_strategy",
];

function oneOf<T extends string>(key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new Error(
      `${key}: expected one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value as T;
}

function boolean(key: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new Error(`${key}: expected true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

function nonNegativeInt(key: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw new Error(`${key}: expected a whole number ≥ 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Session options from a config's runtime keys:
 * `{device, threads, device_id, cudnn_conv_algo_search, use_tf32, prefer_nhwc,
 * memory_arena, memory_pattern, blocked_convs, arena_extend_strategy}`; all optional. `device` must already
 * be resolved to "cpu" or "cuda" (see resolveDevice for "auto"). Throws an
 * Error naming the key and the value for anything else.
 */
export function sessionOptionsFromConfig(config: RuntimeConfig): SessionOptions {
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new Error(`runtime config: expected an object, got ${JSON.stringify(config)}`);
  }
  for (const key of Object.keys(config)) {
    if (!RUNTIME_KEYS.includes(key)) {
      throw new Error(`${key}: unknown runtime key; expected one of ${RUNTIME_KEYS.join(", ")}`);
    }
  }
  const options: SessionOptions = {};
  if (config.device !== undefined) {
    if (config.device === "auto") {
      throw new Error(`device: "auto" must be resolved to "cpu" or "cuda" first (resolveDevice)`);
    }
    options.device = oneOf("device", config.device, ["cpu", "cuda"] as const);
  }
  if (config.threads !== undefined) options.threads = nonNegativeInt("threads", config.threads);
  if (config.device_id !== undefined) {
    options.deviceId = nonNegativeInt("device_id", config.device_id);
  }
  if (config.cudnn_conv_algo_search !== undefined) {
    options.cudnnConvAlgoSearch = oneOf(
      "cudnn_conv_algo_search",
      config.cudnn_conv_algo_search,
      ["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] as const,
    );
  }
  if (config.use_tf32 !== undefined) options.useTf32 = boolean("use_tf32", config.use_tf32);
  if (config.prefer_nhwc !== undefined) {
    options.preferNhwc = boolean("prefer_nhwc", config.prefer_nhwc);
  }
  if (config.memory_arena !== undefined) {
    options.memoryArena = boolean("memory_arena", config.memory_arena);
  }
  if (config.memory_pattern !== undefined) {
    options.memoryPattern = boolean("memory_pattern", config.memory_pattern);
  }
  if (config.blocked_convs !== undefined) {
    options.blockedConvs = boolean("blocked_convs", config.blocked_convs);
  }
  if (config.arena_extend_strategy !== undefined) {
    options.arenaExtendStrategy = oneOf(
      "arena_extend_strategy",
      config.arena_extend_strategy,
      ["kNextPowerOfTwo", "kSameAsRequested"] as const,
    );
  }
  return options;
}
