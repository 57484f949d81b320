/**
 * Conversion between builder graphs and ONNX `ModelProto` bytes (opset 17,
 * IR version 8), through the `onnx-proto` schema.
 */
import onnxProto from "onnx-proto";
import { dtypeFromOnnxCode, type HostArray, ONNX_DTYPE_CODE } from "./dtype.ts";
import { type AttrValue, Graph, type Node, type Shape, type Tensor } from "./graph.ts";
import { NCHWC_DOMAIN, nchwcConvNodes, type NchwcOptions } from "./nchwc.ts";
import { batchStatisticsNodes } from "./batch_statistics.ts";

const { onnx } = onnxProto;

/** Opset every exported model imports. */
export const OPSET = 17;
/** IR version of exported models (readable by every ONNX tool since 2022). */
export const IR_VERSION = 8;

/** Attributes that ONNX defines as floats (all other numeric attributes are ints). */
const FLOAT_ATTRS = new Set([
  "alpha",
  "beta",
  "epsilon",
  "momentum",
  "gamma",
  "min",
  "max",
  "value_float",
  "ratio",
]);
const STOP_GRADIENT_DOC = "stopGradient";
/** Doc-string entry of a node with its own gradient rule (see Node.gradRule). */
const GRAD_RULE_DOC = "gradRule=";
/** Doc-string entry of a node the backward recomputes (see Node.recompute). */
const RECOMPUTE_DOC = "recompute";

/** The autodiff flags of a node as its doc string: entries joined by ";". */
function flagsDoc(n: Node): string | undefined {
  const entries = [
    ...(n.stopGradient ? [STOP_GRADIENT_DOC] : []),
    ...(n.gradRule ? [`${GRAD_RULE_DOC}${n.gradRule}`] : []),
    ...(n.recompute ? [RECOMPUTE_DOC] : []),
  ];
  return entries.length > 0 ? entries.join(";") : undefined;
}

/** Sets the flags a doc string written by {@link flagsDoc} holds. */
function readFlagsDoc(n: Node, doc: string | null | undefined): void {
  for (const entry of doc?.split(";") ?? []) {
    if (entry === STOP_GRADIENT_DOC) n.stopGradient = true;
    else if (entry === RECOMPUTE_DOC) n.recompute = true;
    else if (entry.startsWith(GRAD_RULE_DOC)) n.gradRule = entry.slice(GRAD_RULE_DOC.length);
  }
}

type AttrProto = onnxProto.onnx.IAttributeProto;
const AT = onnx.AttributeProto.AttributeType;

function shapeProto(shape: Shape): onnxProto.onnx.ITensorShapeProto {
  return { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) };
}

function valueInfo(t: Tensor, name = t.name): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ONNX_DTYPE_CODE[t.dtype], shape: shapeProto(t.shape) } },
  };
}

function tensorProto(t: Tensor, data: HostArray): onnxProto.onnx.ITensorProto {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    name: t.name,
    dataType: ONNX_DTYPE_CODE[t.dtype],
    dims: t.shape.map((d) => d as number),
    rawData: raw.slice(),
  };
}

function attrProto(name: string, value: AttrValue, options: ExportOptions): AttrProto {
  if (value instanceof Graph) return { name, type: AT.GRAPH, g: graphProto(value, options) };
  if (typeof value === "string") {
    return { name, type: AT.STRING, s: new TextEncoder().encode(value) };
  }
  if (typeof value === "number") {
    return FLOAT_ATTRS.has(name)
      ? { name, type: AT.FLOAT, f: value }
      : { name, type: AT.INT, i: value };
  }
  if (value.length > 0 && typeof value[0] === "string") {
    return {
      name,
      type: AT.STRINGS,
      strings: (value as string[]).map((s) => new TextEncoder().encode(s)),
    };
  }
  return FLOAT_ATTRS.has(name)
    ? { name, type: AT.FLOATS, floats: value as number[] }
    : { name, type: AT.INTS, ints: value as number[] };
}

/** Options of {@link toModelProto}. */
export interface ExportOptions {
  /** Leave initializer values out (names and shapes stay as graph inputs); for Netron-only copies. */
  omitInitializerData?: boolean;
  /** Skip `value_info` for intermediate tensors. */
  omitValueInfo?: boolean;
  /** Lower qualifying Conv nodes to ORT's blocked-channel CPU kernels (see nchwc.ts). */
  nchwc?: NchwcOptions;
  /**
   * Compute training BatchNorm statistics with ORT's CPU training-mode
   * BatchNormalization (see batch_statistics.ts).
   */
  batchStatistics?: boolean;
}

/**
 * Nodes that contribute to a graph output, in order. Gradient rules also build
 * gradients for constant operands; ORT would still run those nodes, so they
 * are dropped here.
 */
export function liveNodes(graph: Graph): Node[] {
  const needed = new Set<Tensor>(graph.outputs);
  const live: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!node.outputs.some((t) => needed.has(t))) continue;
    live.push(node);
    for (const t of node.inputs) if (t) needed.add(t);
  }
  return live.reverse();
}

function graphProto(graph: Graph, options: ExportOptions): onnxProto.onnx.IGraphProto {
  const outputs = new Set(graph.outputs);
  const inputs = new Set(graph.inputs);
  const nodes = liveNodes(graph);
  const used = new Set<Tensor>(graph.outputs);
  const intermediate: Tensor[] = [];
  for (const node of nodes) {
    for (const t of node.inputs) if (t) used.add(t);
    for (const out of node.outputs) if (!outputs.has(out)) intermediate.push(out);
  }
  const loweringConstants = new Map<string, onnxProto.onnx.ITensorProto>();
  const statistics = options.batchStatistics
    ? batchStatisticsNodes(nodes, loweringConstants, graph.name)
    : new Map<Node, onnxProto.onnx.INodeProto[]>();
  return {
    name: graph.name,
    node: nodes.flatMap((n) =>
      statistics.get(n) ??
        (options.nchwc && nchwcConvNodes(n, options.nchwc, loweringConstants, graph.name)) ?? [{
        name: n.name,
        opType: n.opType,
        input: n.inputs.map((t) => (t ? t.name : "")),
        output: n.outputs.map((t) => t.name),
        attribute: Object.entries(n.attrs).map(([k, v]) => attrProto(k, v, options)),
        docString: flagsDoc(n),
      }]
    ),
    input: graph.inputs.map((t) => valueInfo(t)),
    output: graph.outputs.map((t) => valueInfo(t)),
    initializer: graph.initializers
      .filter((t) => !inputs.has(t) && (used.has(t) || graph.nodes.length === 0))
      .map((t) => tensorProto(t, t.constValue!))
      .concat([...loweringConstants.values()]),
    valueInfo: options.omitValueInfo ? [] : intermediate.map((t) => valueInfo(t)),
  };
}

/** Converts a graph to an ONNX ModelProto object. */
export function toModelProto(graph: Graph, options: ExportOptions = {}): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "contrastive-onnx",
    producerVersion: "0.1.0",
    opsetImport: [
      { domain: "", version: OPSET },
      ...(options.nchwc ? [{ domain: NCHWC_DOMAIN, version: 1 }] : []),
    ],
    graph: graphProto(graph, options),
  });
}

/** Serializes a graph to ONNX model bytes. */
export function encodeModel(graph: Graph, options: ExportOptions = {}): Uint8Array {
  return onnx.ModelProto.encode(toModelProto(graph, options)).finish();
}

function decodeTensorData(proto: onnxProto.onnx.ITensorProto, where: string): HostArray {
  const dtype = dtypeFromOnnxCode(proto.dataType ?? 0);
  const count = (proto.dims ?? []).reduce<number>((n, d) => n * Number(d), 1);
  const raw = proto.rawData;
  const bytes = raw && raw.length > 0 ? raw.slice() : undefined;
  const fromRaw = <T>(ctor: new (b: ArrayBuffer, o: number, n: number) => T) =>
    new ctor(bytes!.buffer as ArrayBuffer, 0, count);
  switch (dtype) {
    case "float32":
      return bytes ? fromRaw(Float32Array) : Float32Array.from(proto.floatData ?? []);
    case "float64":
      return bytes ? fromRaw(Float64Array) : Float64Array.from(proto.doubleData ?? []);
    case "int64":
      return bytes
        ? fromRaw(BigInt64Array)
        : BigInt64Array.from((proto.int64Data ?? []).map((v) => BigInt(v.toString())));
    case "int32":
      return bytes ? fromRaw(Int32Array) : Int32Array.from(proto.int32Data ?? []);
    case "uint8":
    case "bool":
      return bytes ? bytes : Uint8Array.from(proto.int32Data ?? []);
    default:
      throw new Error(`${where}: initializer ${proto.name} has unsupported type ${dtype}`);
  }
}

function attrValue(a: AttrProto, where: string): AttrValue {
  switch (a.type) {
    case AT.INT:
      return Number(a.i);
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.INTS:
      return (a.ints ?? []).map(Number);
    case AT.FLOATS:
      return a.floats ?? [];
    case AT.GRAPH:
      return graphFromProto(a.g!, where);
    default:
      throw new Error(`${where}: attribute ${a.name} has unsupported type ${a.type}`);
  }
}

function protoShape(v: onnxProto.onnx.IValueInfoProto): Shape {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimParam ? d.dimParam : Number(d.dimValue ?? 0)
  );
}

function graphFromProto(gp: onnxProto.onnx.IGraphProto, where: string): Graph {
  const graph = new Graph(gp.name ?? "graph");
  const byName = new Map<string, Tensor>();
  for (const init of gp.initializer ?? []) {
    const dtype = dtypeFromOnnxCode(init.dataType ?? 0);
    const shape = (init.dims ?? []).map(Number);
    byName.set(
      init.name!,
      graph.initializer(init.name!, dtype, shape, decodeTensorData(init, where)),
    );
  }
  for (const vi of gp.input ?? []) {
    if (byName.has(vi.name!)) continue;
    const dtype = dtypeFromOnnxCode(vi.type?.tensorType?.elemType ?? 0);
    byName.set(vi.name!, graph.input(vi.name!, dtype, protoShape(vi)));
  }
  for (const np of gp.node ?? []) {
    const inputs = (np.input ?? []).map((name) => {
      if (name === "") return null;
      const t = byName.get(name);
      if (!t) {
        throw new Error(`${where}: node ${np.name} (${np.opType}) reads unknown tensor ${name}`);
      }
      return t;
    });
    const attrs: Record<string, AttrValue> = {};
    for (const a of np.attribute ?? []) attrs[a.name!] = attrValue(a, where);
    const outNames = np.output ?? [];
    const outs = graph.node(np.opType!, inputs, attrs, {
      name: np.name || undefined,
      outputs: outNames.length,
      outputNames: outNames,
    });
    readFlagsDoc(outs[0].producer!, np.docString);
    outs.forEach((t, k) => {
      t.name = outNames[k];
      byName.set(outNames[k], t);
    });
  }
  for (const vo of gp.output ?? []) {
    const t = byName.get(vo.name!);
    if (!t) throw new Error(`${where}: graph output ${vo.name} is not produced by any node`);
    graph.outputs.push(t);
  }
  return graph;
}

/** Parses ONNX model bytes back into a builder graph (shapes re-checked). */
export function decodeModel(bytes: Uint8Array, where = "<bytes>"): Graph {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`${where}: not an ONNX model (${(e as Error).message})`);
  }
  if (!model.graph) throw new Error(`${where}: ONNX model has no graph`);
  return graphFromProto(model.graph, where);
}

/** Writes a graph to an .onnx file atomically. */
export async function saveModel(
  graph: Graph,
  path: string,
  options: ExportOptions = {},
): Promise<number> {
  const bytes = encodeModel(graph, options);
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
  return bytes.length;
}

/** Reads an .onnx file into a builder graph; a missing file gives one clear error. */
export async function loadModel(path: string): Promise<Graph> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`model file not found: ${path}`);
    throw new Error(`cannot read model file ${path}: ${(e as Error).message}`);
  }
  return decodeModel(bytes, path);
}
