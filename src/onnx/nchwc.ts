/**
 * Lowering of Conv nodes to ONNX Runtime's blocked-channel CPU kernels
 * (the `com.microsoft.nchwc` domain: ReorderInput, Conv, ReorderOutput).
 *
 * ORT's own NCHWc graph transformer only converts a Conv whose weight is a
 * constant initializer, because it reorders the weight once at load time.
 * Our training graphs feed the weights as inputs, so every Conv ran MLAS's
 * im2col path. This lowering does what the transformer would, with the weight
 * reorder (OIHW → OIHWBiBo, MLAS's layout for blocked inputs) as graph nodes
 * run each step; the blocked Conv then uses MLAS's direct NCHWc kernels.
 * Only the export for an ORT CPU session applies it: graphs written for
 * Netron and the CUDA provider keep the plain Conv.
 */
import onnxProto from "onnx-proto";
import { ONNX_DTYPE_CODE } from "./dtype.ts";
import type { Node } from "./graph.ts";

const AT = onnxProto.onnx.AttributeProto.AttributeType;

/** The ONNX domain of ORT's blocked-channel CPU kernels. */
export const NCHWC_DOMAIN = "com.microsoft.nchwc";

/** What {@link nchwcConvNodes} lowers. */
export interface NchwcOptions {
  /** MLAS's channel block (8 with AVX2, 16 with AVX-512), as probed on this host. */
  blockSize: number;
}

type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;

/**
 * The name of the int64 initializer `${prefix}/${dims joined by x}` holding
 * `dims` (a Reshape target), added to `constants` on first use.
 */
export function shapeInitializer(
  constants: Map<string, TensorProto>,
  prefix: string,
  dims: number[],
): string {
  const name = `${prefix}/${dims.join("x")}`;
  if (!constants.has(name)) constants.set(name, shapeConstant(name, dims));
  return name;
}

function shapeConstant(name: string, dims: number[]): TensorProto {
  const data = new BigInt64Array(dims.map(BigInt));
  return {
    name,
    dataType: ONNX_DTYPE_CODE.int64,
    dims: [dims.length],
    rawData: new Uint8Array(data.buffer.slice(0)),
  };
}

/**
 * The blocked-kernel nodes replacing Conv `node`, or null when it does not
 * qualify (not float32, not 2-D, grouped, channels not multiples of the
 * block, a symbolic weight shape, or auto_pad).
 * `constants` collects the shape initializers the nodes read (shared by name
 * within the graph `graphName`, which prefixes their names).
 */
export function nchwcConvNodes(
  node: Node,
  options: NchwcOptions,
  constants: Map<string, TensorProto>,
  graphName: string,
): NodeProto[] | null {
  if (node.opType !== "Conv") return null;
  const [x, w, b] = node.inputs;
  const y = node.outputs[0];
  if (!x || !w || x.dtype !== "float32" || w.rank !== 4 || y.rank !== 4) return null;
  if (w.shape.some((d) => typeof d !== "number")) return null;
  const [k, c, kh, kw] = w.shape as number[];
  const block = options.blockSize;
  const group = (node.attrs.group as number | undefined) ?? 1;
  if (group !== 1 || block < 2 || k % block !== 0 || c % block !== 0) return null;
  if (node.attrs.auto_pad !== undefined && node.attrs.auto_pad !== "NOTSET") return null;
  const taps = kh * kw;
  // OIHW → OIHWBiBo as two transposes that ORT runs on fast paths (a batch of 2-D transposes,
  // then a move of whole Bo blocks): one 6-D transpose ran element by element, 3× slower
  // (14 ms per 512×512×3×3 weight).
  const shape = (dims: number[]) => shapeInitializer(constants, `${graphName}/nchwc_shape`, dims);
  const base = y.name;
  const name = (part: string) => `${node.name}/nchwc_${part}`;
  const tensor = (part: string) => `${base}/nchwc_${part}`;
  const ints = (n: string, v: number[]) => ({ name: n, type: AT.INTS, ints: v });
  const attrs = [ints("kernel_shape", [kh, kw])];
  for (const key of ["strides", "pads", "dilations"]) {
    const value = node.attrs[key] as number[] | undefined;
    if (value) attrs.push(ints(key, value));
  }
  const weightNodes: NodeProto[] = [
    // [K/B, Bo, C·kh·kw] → [K/B, C·kh·kw, Bo] = [K/B, C/B, Bi, kh·kw, Bo]
    {
      name: name("w3"),
      opType: "Reshape",
      input: [w.name, shape([k / block, block, c * taps])],
      output: [tensor("w3")],
    },
    {
      name: name("wt"),
      opType: "Transpose",
      input: [tensor("w3")],
      output: [tensor("wt")],
      attribute: [ints("perm", [0, 2, 1])],
    },
  ];
  if (taps === 1) {
    weightNodes.push({
      name: name("wb"),
      opType: "Reshape",
      input: [tensor("wt"), shape([k, c, kh, kw])],
      output: [tensor("wb")],
    });
  } else {
    // [K/B·C/B, Bi, kh·kw, Bo] → [K/B·C/B, kh·kw, Bi, Bo]
    weightNodes.push(
      {
        name: name("w4"),
        opType: "Reshape",
        input: [tensor("wt"), shape([(k / block) * (c / block), block, taps, block])],
        output: [tensor("w4")],
      },
      {
        name: name("wt2"),
        opType: "Transpose",
        input: [tensor("w4")],
        output: [tensor("wt2")],
        attribute: [ints("perm", [0, 2, 1, 3])],
      },
      {
        name: name("wb"),
        opType: "Reshape",
        input: [tensor("wt2"), shape([k, c, kh, kw])],
        output: [tensor("wb")],
      },
    );
  }
  return [
    ...weightNodes,
    {
      name: name("xb"),
      opType: "ReorderInput",
      domain: NCHWC_DOMAIN,
      input: [x.name],
      output: [tensor("xb")],
    },
    {
      name: name("conv"),
      opType: "Conv",
      domain: NCHWC_DOMAIN,
      input: [tensor("xb"), tensor("wb"), ...(b ? [b.name] : [])],
      output: [tensor("yb")],
      attribute: attrs,
    },
    {
      name: name("y"),
      opType: "ReorderOutput",
      domain: NCHWC_DOMAIN,
      input: [tensor("yb")],
      output: [y.name],
      attribute: [{ name: "channels", type: AT.INT, i: k }],
    },
  ];
}
