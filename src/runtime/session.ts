/**
 * ONNX Runtime sessions over builder graphs, on CPU or CUDA.
 */
import * as ort from "onnxruntime-node";
import type { DType } from "../onnx/dtype.ts";
import { encodeModel, type Graph } from "../onnx/mod.ts";
import { nchwcBlockSize } from "./nchwc_probe.ts";
import { checkCudaProvider } from "./providers.ts";
import {
  type ArenaExtendStrategy,
  assertCudaOptionsApplicable,
  type CudnnConvAlgoSearch,
  ortSessionOptions,
} from "./session_options.ts";
import type { HostTensor } from "./host_tensor.ts";

/** Where a session runs. */
export type Device = "cpu" | "cuda";

/** Options of {@link Session.create}. */
export interface SessionOptions {
  device?: Device;
  /** Intra-op threads on CPU (0 or absent: the default of threads.ts, one per physical core). */
  threads?: number;
  /**
   * Whether idle intra-op threads spin waiting for work (ORT's
   * `session.intra_op.allow_spinning`; absent: the default of threads.ts).
   */
  spinning?: boolean;
  /** CUDA device id. */
  deviceId?: number;
  /** Graph optimization level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /**
   * Extra CUDA provider options by ORT name. onnxruntime-node 1.29.0 passes
   * none of them on, so any key makes {@link Session.create} throw.
   */
  cudaOptions?: Record<string, string | number | boolean>;
  /**
   * CPU memory arena (ORT's enableCpuMemArena; default true). Off trades
   * speed for a smaller resident size.
   */
  memoryArena?: boolean;
  /**
   * ORT's memory pattern (enableMemPattern; default false): one block planned
   * from the first run for every intermediate. Measured on the ResNet-18
   * training step it holds far more than the live tensors (3.6 vs 2.1 GB at
   * batch 64) and is not faster, so it is off unless asked for.
   */
  memoryPattern?: boolean;
  /**
   * CUDA provider options, ORT's defaults when absent (EXHAUSTIVE, TF32 on,
   * NCHW, kNextPowerOfTwo); which values are fastest is to be measured on a
   * GPU. onnxruntime-node 1.29.0 forwards only deviceId to the CUDA provider,
   * so a value other than the default throws (see session_options.ts).
   */
  cudnnConvAlgoSearch?: CudnnConvAlgoSearch;
  /** Allow TF32 math in cuBLAS/cuDNN on Ampere and newer (CUDA; ORT default true). */
  useTf32?: boolean;
  /**
   * On CPU, run qualifying Convs on ORT's blocked-channel (NCHWc) kernels
   * (default true; see onnx/nchwc.ts). Ignored on CUDA.
   */
  blockedConvs?: boolean;
  /**
   * On CPU, compute training BatchNorm statistics with ORT's training-mode
   * BatchNormalization (default true; see onnx/batch_statistics.ts). False
   * keeps the portable primitive ops, for tests and A/B timings. Ignored on CUDA.
   */
  batchStatistics?: boolean;
  /** Prefer NHWC kernels where the CUDA provider has them (ORT default false). */
  preferNhwc?: boolean;
  /** How the CUDA memory arena grows (ORT default "kNextPowerOfTwo"). */
  arenaExtendStrategy?: ArenaExtendStrategy;
}

const ORT_TYPE: Record<DType, ort.Tensor.Type> = {
  float32: "float32",
  float64: "float64",
  float16: "float16",
  int64: "int64",
  int32: "int32",
  uint8: "uint8",
  bool: "bool",
};

/** Converts a host tensor for ORT. */
export function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(ORT_TYPE[t.dtype], t.data as never, t.shape);
}

function fromOrt(t: ort.Tensor): HostTensor {
  const dtype = (Object.entries(ORT_TYPE).find(([, v]) => v === t.type)?.[0] ?? "float32") as DType;
  return { dtype, shape: [...t.dims], data: t.data as HostTensor["data"] };
}

/**
 * The ONNX bytes a session runs for `graph`. On CPU, training BatchNorm
 * statistics use ORT's training-mode BatchNormalization (onnx/batch_statistics.ts)
 * and, with blocked Convs (the default), the qualifying Convs are lowered to
 * ORT's NCHWc kernels (onnx/nchwc.ts).
 */
export async function sessionModelBytes(
  graph: Graph,
  options: SessionOptions = {},
): Promise<Uint8Array> {
  const cpu = (options.device ?? "cpu") === "cpu";
  const block = cpu && options.blockedConvs !== false ? await nchwcBlockSize() : null;
  return encodeModel(graph, {
    omitValueInfo: true,
    batchStatistics: cpu && options.batchStatistics !== false,
    ...(block ? { nchwc: { blockSize: block } } : {}),
  });
}

/** A loaded model ready to run. */
export class Session {
  private constructor(
    readonly inner: ort.InferenceSession,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    readonly device: Device,
  ) {}

  /** Creates a session from a builder graph or ONNX bytes. */
  static async create(model: Graph | Uint8Array, options: SessionOptions = {}): Promise<Session> {
    const device = options.device ?? "cpu";
    const bytes = model instanceof Uint8Array ? model : await sessionModelBytes(model, options);
    if (device === "cuda") {
      checkCudaProvider();
      assertCudaOptionsApplicable(options);
    }
    const sessionOptions = ortSessionOptions({ ...options, device });
    const inner = await ort.InferenceSession.create(bytes, sessionOptions);
    return new Session(inner, inner.inputNames, inner.outputNames, device);
  }

  /** Runs the model; returns the named outputs (all when `fetch` is omitted). */
  async run(
    feeds: Record<string, HostTensor>,
    fetch?: string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`session run: missing input ${name}`);
      ortFeeds[name] = toOrt(t);
    }
    const results = fetch ? await this.inner.run(ortFeeds, fetch) : await this.inner.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, value] of Object.entries(results)) out[name] = fromOrt(value as ort.Tensor);
    return out;
  }

  /** Frees native memory. */
  async release(): Promise<void> {
    await this.inner.release();
  }
}
