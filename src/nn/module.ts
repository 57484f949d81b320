/**
 * {@link Module}: a named place in the parameter tree while a model is built
 * on a graph. It carries the store, the dotted name prefix, the forward
 * options (train/eval, BN branch, conv masks) and collects BN updates.
 */
import type { Graph, Tensor } from "../onnx/graph.ts";
import type { BufferUpdate, InitRule, ParamRole, ParamStore } from "./params.ts";

/** How one forward pass is built. */
export interface ForwardOptions {
  /** Training mode: BN normalises with batch statistics and reports running-stat updates. */
  train: boolean;
  /** BN branch (0 dense, 1 pruned for SDCLR's dual BN); must be below the store's `bnBranches`. */
  branch?: number;
  /** Conv weight masks keyed by the full weight name (SDCLR's pruned branch uses w ⊙ m). */
  masks?: Readonly<Record<string, Tensor>>;
}

interface BuildState {
  readonly store: ParamStore;
  readonly options: ForwardOptions;
  readonly branch: number;
  readonly updates: BufferUpdate[];
  readonly usedMasks: Set<string>;
}

/** A position in the model's name tree during one forward build. */
export class Module {
  private constructor(readonly path: string, readonly state: BuildState) {}

  /** The root of a forward build; `prefix` (e.g. `"encoder"`) starts every name. */
  static root(store: ParamStore, options: ForwardOptions, prefix = ""): Module {
    const branch = options.branch ?? 0;
    if (!Number.isInteger(branch) || branch < 0 || branch >= store.bnBranches) {
      throw new Error(
        `forward options: branch ${options.branch} is out of range; the store has ${store.bnBranches} BN branch(es) ` +
          `(create it with bnBranches: 2 for dual BN)`,
      );
    }
    return new Module(prefix, { store, options, branch, updates: [], usedMasks: new Set() });
  }

  /** The sub-module `name` (a layer name or block index). */
  child(name: string | number): Module {
    return new Module(this.name(String(name)), this.state);
  }

  /** Full dotted name of a local name. */
  name(local: string): string {
    return this.path ? `${this.path}.${local}` : local;
  }

  /** The graph being built. */
  get graph(): Graph {
    return this.state.store.graph;
  }

  /** The parameter store. */
  get store(): ParamStore {
    return this.state.store;
  }

  /** Whether BN uses batch statistics. */
  get train(): boolean {
    return this.state.options.train;
  }

  /** The BN branch of this build. */
  get branch(): number {
    return this.state.branch;
  }

  /** BN running-stat updates collected so far (train mode). */
  get updates(): readonly BufferUpdate[] {
    return this.state.updates;
  }

  /** Declares (or reuses) the parameter `<path>.<local>`. */
  param(
    local: string,
    shape: readonly number[],
    role: Exclude<ParamRole, "buffer">,
    init: InitRule,
  ): Tensor {
    return this.store.declare(this.name(local), shape, role, init);
  }

  /** Declares (or reuses) the buffer `<path>.<local>`. */
  buffer(local: string, shape: readonly number[], init: InitRule): Tensor {
    return this.store.declare(this.name(local), shape, "buffer", init);
  }

  /** Records that `input` becomes `updated` after a training step. */
  addUpdate(input: Tensor, updated: Tensor): void {
    this.state.updates.push({ name: input.name, input, updated });
  }

  /** The mask of the weight named `weightName`, if this build masks it. */
  mask(weightName: string): Tensor | undefined {
    const m = this.state.options.masks?.[weightName];
    if (m) this.state.usedMasks.add(weightName);
    return m;
  }

  /** Mask keys that no conv of this build used (a misspelt or foreign name). */
  unusedMasks(): string[] {
    return Object.keys(this.state.options.masks ?? {}).filter((k) => !this.state.usedMasks.has(k));
  }

  /** A node name for Netron: the dotted path, tagged with the branch when it is not 0. */
  nodeName(op: string): string {
    const base = this.path ? `${this.path}/${op}` : op;
    return this.branch === 0 ? base : `${base}@branch${this.branch}`;
  }
}

/** Result of building a model part: its output and the BN updates it needs exposed. */
export interface Built {
  output: Tensor;
  updates: BufferUpdate[];
}

/**
 * Builds `part` at the root `prefix` and returns its output with the BN updates.
 * Throws when a mask key matched no conv of the part.
 */
export function build(
  store: ParamStore,
  prefix: string,
  options: ForwardOptions,
  part: (m: Module) => Tensor,
): Built {
  const m = Module.root(store, options, prefix);
  const output = part(m);
  const unused = m.unusedMasks().filter((k) => k.startsWith(prefix ? `${prefix}.` : ""));
  if (unused.length > 0) {
    throw new Error(
      `forward options: masks ${unused.join(", ")} match no conv weight under "${prefix}"`,
    );
  }
  return { output, updates: [...m.updates] };
}
