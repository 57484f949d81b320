/**
 * Parameters and buffers of a model as graph inputs. A {@link ParamStore}
 * records every trainable parameter and BN running statistic a model declares
 * on a graph, with its name (torchvision's `state_dict` names), shape, role,
 * optimizer flags and initialisation rule; values live in checkpoints, so one
 * graph serves every step.
 */
import type { DType, HostArray } from "../onnx/dtype.ts";
import { formatShape, type Graph, type Tensor } from "../onnx/graph.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";

/** What a declared value is for. */
export type ParamRole = "weight" | "bias" | "bn_weight" | "bn_bias" | "buffer";

/** How a value is initialised (see `initParams`). */
export type InitRule =
  | { kind: "constant"; value: number }
  | { kind: "normal"; std: number }
  | { kind: "uniform"; bound: number };

/** A declared parameter or buffer. */
export interface ParamInfo {
  /** Full name, e.g. `encoder.layer1.0.conv1.weight`; also the graph input name. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly role: ParamRole;
  /** Excluded from weight decay by optimizers that honour the flag (BN affine, biases). */
  readonly noWeightDecay: boolean;
  /** Excluded from LARS trust-ratio adaptation (BN affine, biases). */
  readonly noLarsAdapt: boolean;
  readonly init: InitRule;
  /** The graph input. */
  readonly tensor: Tensor;
}

/** A BN running statistic and the graph value that replaces it after a training step. */
export interface BufferUpdate {
  /** Buffer name, e.g. `encoder.bn1.running_mean`. */
  readonly name: string;
  /** The graph input holding the current value. */
  readonly input: Tensor;
  /** The new value (cut from the gradient). */
  readonly updated: Tensor;
}

/** Options of {@link ParamStore}. */
export interface ParamStoreOptions {
  /** Element type of every parameter (float32; float64 for gradient checks). */
  dtype?: DType;
  /**
   * Number of BN branches (2 for SDCLR's dual BN). With more than one, BN
   * values are named `<bn>.bn_list.<branch>.<field>` as in SDCLR's code.
   */
  bnBranches?: number;
}

const NO_DECAY_ROLES: ReadonlySet<ParamRole> = new Set(["bias", "bn_weight", "bn_bias"]);

/**
 * The parameters and buffers declared on one graph. Declaring a name twice
 * with the same shape and role returns the same graph input: building an
 * encoder twice shares its weights (SDCLR's pruned branch reuses the dense
 * conv weights while its BN names differ by branch).
 */
export class ParamStore {
  readonly dtype: DType;
  readonly bnBranches: number;
  readonly #entries = new Map<string, ParamInfo>();

  constructor(readonly graph: Graph, options: ParamStoreOptions = {}) {
    this.dtype = options.dtype ?? "float32";
    this.bnBranches = options.bnBranches ?? 1;
    if (!Number.isInteger(this.bnBranches) || this.bnBranches < 1) {
      throw new Error(
        `ParamStore: bnBranches must be a positive integer, got ${options.bnBranches}`,
      );
    }
  }

  /** Declares (or, when already declared with the same shape and role, returns) a value. */
  declare(name: string, shape: readonly number[], role: ParamRole, init: InitRule): Tensor {
    const existing = this.#entries.get(name);
    if (existing) {
      if (existing.role !== role || existing.shape.join() !== shape.join()) {
        throw new Error(
          `parameter ${name}: declared again as ${role} ${formatShape([...shape])}, ` +
            `first declared as ${existing.role} ${formatShape([...existing.shape])}`,
        );
      }
      return existing.tensor;
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) {
        throw new Error(
          `parameter ${name}: shape ${formatShape([...shape])} must have positive integer dims`,
        );
      }
    }
    const tensor = this.graph.input(name, this.dtype, [...shape]);
    const noDecay = NO_DECAY_ROLES.has(role);
    this.#entries.set(name, {
      name,
      shape: [...shape],
      dtype: this.dtype,
      role,
      noWeightDecay: noDecay,
      noLarsAdapt: noDecay,
      init,
      tensor,
    });
    return tensor;
  }

  /** The entry of `name`; throws naming it when absent. */
  get(name: string): ParamInfo {
    const entry = this.#entries.get(name);
    if (!entry) {
      throw new Error(`unknown parameter ${name} (the store holds ${this.#entries.size} values)`);
    }
    return entry;
  }

  /** Whether `name` is declared. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Trainable parameters in declaration order (buffers excluded). */
  params(prefix = ""): ParamInfo[] {
    return this.entries(prefix).filter((e) => e.role !== "buffer");
  }

  /** BN running statistics in declaration order. */
  buffers(prefix = ""): ParamInfo[] {
    return this.entries(prefix).filter((e) => e.role === "buffer");
  }

  /** Every declared value whose name starts with `prefix`, in declaration order. */
  entries(prefix = ""): ParamInfo[] {
    return [...this.#entries.values()].filter((e) => e.name.startsWith(prefix));
  }

  /** Conv weights (rank-4 `weight` parameters) under `prefix`: the values SDCLR prunes. */
  convWeights(prefix = ""): ParamInfo[] {
    return this.params(prefix).filter((e) => e.role === "weight" && e.shape.length === 4);
  }

  /** Number of trainable scalars under `prefix`. */
  count(prefix = ""): number {
    return this.params(prefix).reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0);
  }
}

/**
 * Declares one mask graph input per conv weight under `prefix`, named
 * `<weight>.mask`, shaped like the weight; returns them keyed by weight name,
 * ready for `ForwardOptions.masks`.
 */
export function declareMasks(store: ParamStore, prefix: string): Record<string, Tensor> {
  const weights = store.convWeights(prefix);
  if (weights.length === 0) {
    throw new Error(`declareMasks: no conv weights under prefix "${prefix}"`);
  }
  const masks: Record<string, Tensor> = {};
  for (const w of weights) {
    masks[w.name] = store.graph.input(`${w.name}.mask`, w.dtype, [...w.shape]);
  }
  return masks;
}

/** Marks each update's new value as a graph output named `<buffer>_new`; returns the output names. */
export function exposeBufferUpdates(graph: Graph, updates: readonly BufferUpdate[]): string[] {
  const seen = new Set<string>();
  return updates.map((u) => {
    if (seen.has(u.name)) {
      throw new Error(
        `buffer ${u.name} is updated twice in one graph (the same BN branch ran twice)`,
      );
    }
    seen.add(u.name);
    return graph.output(u.updated, `${u.name}_new`).name;
  });
}

/**
 * Feeds for a session: one host tensor per declared value of `store`, taken
 * from `values`. Throws naming the first missing or mis-shaped value.
 */
export function paramFeeds(
  store: ParamStore,
  values: ReadonlyMap<string, HostTensor | HostArray>,
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const e of store.entries()) {
    const v = values.get(e.name);
    if (!v) throw new Error(`paramFeeds: no value for ${e.name} ${formatShape([...e.shape])}`);
    const data = "data" in v ? v.data : v;
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new Error(
        `paramFeeds: ${e.name} has ${data.length} values, expected ${size} for ${
          formatShape([...e.shape])
        }`,
      );
    }
    feeds[e.name] = { dtype: e.dtype, shape: [...e.shape], data: asDtype(data, e.dtype) };
  }
  return feeds;
}

function asDtype(data: HostArray, dtype: DType): HostArray {
  if (dtype === "float32" && !(data instanceof Float32Array)) {
    return Float32Array.from(data as ArrayLike<number>);
  }
  if (dtype === "float64" && !(data instanceof Float64Array)) {
    return Float64Array.from(data as ArrayLike<number>);
  }
  return data;
}
