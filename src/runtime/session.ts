/**
 * ONNX Runtime sessions over builder graphs, on CPU or CUDA.
 */
import * as ort from "onnxruntime-node";
import type { DType } from "../onnx/dtype.ts";
import { encodeModel, type Graph } from "../onnx/mod.ts";
import { checkCudaProvider } from "./providers.ts";
import type { HostTensor } from "./host_tensor.ts";

/** Where a session runs. */
export type Device = "cpu" | "cuda";

/** Options of {@link Session.create}. */
export interface SessionOptions {
  device?: Device;
  /** Intra-op threads on CPU (0: ORT's default, one per core). */
  threads?: number;
  /** CUDA device id. */
  deviceId?: number;
  /** Graph optimization level (default "all"). */
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Extra CUDA provider options (cudnn_conv_algo_search, use_tf32, ...). */
  cudaOptions?: Record<string, string | number | boolean>;
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
    const bytes = model instanceof Uint8Array ? model : encodeModel(model, { omitValueInfo: true });
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: options.optimization ?? "all",
      intraOpNumThreads: options.threads ?? 0,
      interOpNumThreads: 1,
      executionMode: "sequential",
      executionProviders: ["cpu"],
    };
    if (device === "cuda") {
      checkCudaProvider();
      sessionOptions.executionProviders = [
        { name: "cuda", deviceId: options.deviceId ?? 0, ...(options.cudaOptions ?? {}) } as never,
        "cpu",
      ];
    }
    const inner = await ort.InferenceSession.create(bytes, sessionOptions);
    return new Session(inner, inner.inputNames, inner.outputNames, device);
  }

  /** Runs the model; returns the named outputs (all when `fetch` is omitted). */
  async run(feeds: Record<string, HostTensor>, fetch?: string[]): Promise<Record<string, HostTensor>> {
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
