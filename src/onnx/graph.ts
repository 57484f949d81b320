/**
 * The typed graph builder: tensors with dtype and static shape (symbolic
 * dimensions allowed), nodes checked by a per-op shape rule when added.
 */
import { allocHost, type DType, type HostArray } from "./dtype.ts";
import { inferShapes } from "./shapes.ts";

/** A dimension: a fixed size, or a symbol such as `"batch"`. */
export type Dim = number | string;
/** A tensor shape. */
export type Shape = Dim[];

/** Attribute value of a node. Numbers are ints unless the name is a known float attribute. */
export type AttrValue = number | string | number[] | string[] | Graph;

/** Where a tensor comes from. */
export type TensorKind = "input" | "initializer" | "node";

/** A value of the graph: a graph input, an initializer or a node output. */
export class Tensor {
  constructor(
    readonly graph: Graph,
    public name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    readonly kind: TensorKind,
    readonly producer?: Node,
    /** Known value of a constant (initializers made by the builder). */
    readonly constValue?: HostArray,
  ) {}

  /** Rank (number of dimensions). */
  get rank(): number {
    return this.shape.length;
  }

  /** Number of elements; throws when a dimension is symbolic. */
  get size(): number {
    return this.shape.reduce<number>((n, d) => {
      if (typeof d !== "number") throw new Error(`tensor ${this.name} has symbolic dim ${d}`);
      return n * d;
    }, 1);
  }

  /** Shape as text, for messages: `[64, 3, 32, 32]`. */
  get shapeText(): string {
    return formatShape(this.shape);
  }
}

/** A node of the graph. */
export interface Node {
  opType: string;
  name: string;
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  attrs: Record<string, AttrValue>;
  /** Set on the Identity that marks values as constants for the gradient. */
  stopGradient?: boolean;
  /**
   * Name of a registered gradient rule that replaces the op type's own for
   * this node (a composite with a hand-written backward, as JAX's
   * custom_vjp): e.g. a BatchNormalization fed its own input's batch
   * statistics. Exported in the node's doc string.
   */
  gradRule?: string;
  /**
   * The backward recomputes this node's outputs from its inputs where a
   * gradient rule reads them, instead of keeping them alive from the forward
   * (rematerialization, as JAX's checkpoint policies): for cheap elementwise
   * nodes whose outputs are as large as their kept inputs. Exported in the
   * node's doc string.
   */
  recompute?: boolean;
}

/** Options of {@link Graph.node}. */
export interface NodeOptions {
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Node name (made unique within the current scope). */
  name?: string;
  /** Names for the output tensors. */
  outputNames?: string[];
}

/** Formats a shape for error messages. */
export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Product of a shape's dims; throws on a symbolic dim. */
export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") throw new Error(`shape ${formatShape(shape)} is not static`);
    n *= d;
  }
  return n;
}

/** An ONNX graph under construction. */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly initializers: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly #names = new Set<string>();
  readonly #scopes: string[] = [];

  constructor(readonly name = "graph") {}

  /** A name not yet used in this graph, prefixed by the current scope. */
  uniqueName(base: string): string {
    const full = this.#scopes.length > 0 ? `${this.#scopes.join("/")}/${base}` : base;
    if (!this.#names.has(full)) {
      this.#names.add(full);
      return full;
    }
    for (let k = 1;; k++) {
      const candidate = `${full}_${k}`;
      if (!this.#names.has(candidate)) {
        this.#names.add(candidate);
        return candidate;
      }
    }
  }

  /** Runs `build` with node and tensor names prefixed by `scope/` (Netron groups by it). */
  scope<T>(scope: string, build: () => T): T {
    this.#scopes.push(scope);
    try {
      return build();
    } finally {
      this.#scopes.pop();
    }
  }

  /** Declares a graph input. */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    this.#claim(name);
    const t = new Tensor(this, name, dtype, shape, "input");
    this.inputs.push(t);
    return t;
  }

  /** Adds a named initializer holding `data`. */
  initializer(name: string, dtype: DType, shape: Shape, data: HostArray): Tensor {
    this.#claim(name);
    return this.#addInitializer(name, dtype, shape, data);
  }

  #addInitializer(name: string, dtype: DType, shape: Shape, data: HostArray): Tensor {
    const count = shapeSize(shape);
    if (data.length !== count) {
      throw new Error(
        `initializer ${name}: ${data.length} values for shape ${formatShape(shape)} (${count})`,
      );
    }
    const t = new Tensor(this, name, dtype, shape, "initializer", undefined, data);
    this.initializers.push(t);
    return t;
  }

  /** A constant tensor (an initializer with a generated name). Scalars when shape is []. */
  constant(values: number | number[] | HostArray, dtype: DType, shape?: Shape): Tensor {
    const list = typeof values === "number" ? [values] : values;
    const resolvedShape = shape ?? (typeof values === "number" ? [] : [list.length]);
    const data = allocHost(dtype, list.length);
    // float16 data holds bits: numbers go in through a Float16Array view (a Uint16Array is taken as bits).
    const target = dtype === "float16" && !(values instanceof Uint16Array)
      ? new Float16Array(data.buffer)
      : data;
    for (let i = 0; i < list.length; i++) {
      const v = list[i];
      if (target instanceof BigInt64Array) target[i] = BigInt(v as number | bigint);
      else (target as Float32Array)[i] = Number(v);
    }
    return this.#addInitializer(this.uniqueName("const"), dtype, resolvedShape, data);
  }

  /** Adds a node; its output dtypes and shapes come from the op's shape rule. */
  node(
    opType: string,
    inputs: (Tensor | null)[],
    attrs: Record<string, AttrValue> = {},
    options: NodeOptions = {},
  ): Tensor[] {
    for (const input of inputs) {
      if (input && input.graph !== this) {
        throw new Error(`${opType}: input ${input.name} belongs to another graph`);
      }
    }
    const nodeName = options.name
      ? this.uniqueName(options.name)
      : this.uniqueName(opType.toLowerCase());
    const infos = inferShapes(opType, inputs, attrs, nodeName, options.outputs ?? 1);
    const node: Node = { opType, name: nodeName, inputs, outputs: [], attrs };
    node.outputs = infos.map((info, k) => {
      const base = options.outputNames?.[k];
      const name = base
        ? this.uniqueName(base)
        : infos.length === 1
        ? nodeName
        : `${nodeName}:${k}`;
      if (!base && infos.length > 1) this.#claim(name);
      return new Tensor(this, name, info.dtype, info.shape, "node", node);
    });
    this.nodes.push(node);
    return node.outputs;
  }

  /** Adds a single-output node. */
  op(
    opType: string,
    inputs: (Tensor | null)[],
    attrs: Record<string, AttrValue> = {},
    name?: string,
  ): Tensor {
    return this.node(opType, inputs, attrs, { name })[0];
  }

  /** Marks `t` as a graph output under `name` (an Identity is inserted when the name differs). */
  output(t: Tensor, name?: string): Tensor {
    let out = t;
    if ((name !== undefined && name !== t.name) || t.kind !== "node" || this.outputs.includes(t)) {
      // Output names are exact, whatever scope the caller is in.
      const scopes = this.#scopes.splice(0);
      try {
        out = this.node("Identity", [t], {}, { name: name ?? `${t.name}_out` })[0];
      } finally {
        this.#scopes.push(...scopes);
      }
      if (name !== undefined && out.name !== name) {
        throw new Error(`graph output name ${name} is already used by another tensor`);
      }
    }
    this.outputs.push(out);
    return out;
  }

  /** A value equal to `t` that the gradient treats as a constant (the autodiff stops here). */
  stopGradient(t: Tensor): Tensor {
    const out = this.node("Identity", [t], {}, { name: "stop_gradient" })[0];
    out.producer!.stopGradient = true;
    return out;
  }

  /** Finds a graph input by name. */
  findInput(name: string): Tensor | undefined {
    return this.inputs.find((t) => t.name === name);
  }

  #claim(name: string): void {
    if (this.#names.has(name)) {
      throw new Error(`tensor name ${name} is already used in graph ${this.name}`);
    }
    this.#names.add(name);
  }
}
