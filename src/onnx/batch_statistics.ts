/**
 * Lowering of training BatchNorm statistics to ORT's CPU training-mode
 * BatchNormalization.
 *
 * src/nn/batchnorm.ts computes a batch's mean and biased variance with
 * primitive ops (ReduceMean, Sub, Mul, ReduceMean) and normalizes with
 * BatchNormalization in inference form, because ORT's CUDA provider has no
 * training mode. ORT's CPU provider has one: a single node returns the
 * normalized output and, with momentum 0 (running statistics fed in count 0×), the
 * batch mean and biased variance themselves (running = input·0 + batch·1),
 * in half the time of the four primitive passes (bench/batch_statistics.ts)
 * and without their two activation-sized temporaries. Only the export for an
 * ORT CPU session applies it; every other export keeps the portable form.
 */
import onnxProto from "onnx-proto";
import { ONNX_DTYPE_CODE } from "./dtype.ts";
import type { Node, Tensor } from "./graph.ts";
import { shapeInitializer } from "./nchwc.ts";

const AT = onnxProto.onnx.AttributeProto.AttributeType;

type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;

function sameInts(a: unknown, b: number[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `t`'s producer when it is a `opType` node, else undefined. */
function producedBy(t: Tensor | null | undefined, opType: string): Node | undefined {
  return t?.producer?.opType === opType ? t.producer : undefined;
}

/** The ReduceMean over every axis but 1 of `x`, keeping dims, that produced `t`. */
function channelMean(t: Tensor | null | undefined, x: Tensor): Node | undefined {
  const node = producedBy(t, "ReduceMean");
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  if (!node || node.inputs[0] !== x || node.inputs.length !== 1) return undefined;
  return node.attrs.keepdims === 1 && sameInts(node.attrs.axes, axes) ? node : undefined;
}

/** The statistics nodes feeding inference-form BatchNormalization `bn`, when it has that form. */
interface StatisticsPattern {
  bn: Node;
  /** ReduceMean(x): the mean, dims kept. */
  mean: Node;
  /** ReduceMean((x − mean)²): the biased variance, dims kept. */
  variance: Node;
  /** The Sub and Mul between them, when nothing else reads their outputs. */
  privateNodes: Node[];
}

function matchStatistics(bn: Node, readers: Map<Tensor, number>): StatisticsPattern | undefined {
  if (bn.opType !== "BatchNormalization" || (bn.attrs.training_mode ?? 0) !== 0) return undefined;
  const [x, scale, bias, meanC, varC] = bn.inputs;
  if (!x || !scale || !bias || x.dtype !== "float32" || x.rank < 2) return undefined;
  // The new node sits where the mean is computed: the scale and bias must exist there already.
  if (scale.producer || bias.producer) return undefined;
  const mean = channelMean(producedBy(meanC, "Reshape")?.inputs[0], x);
  const squares = producedBy(producedBy(varC, "Reshape")?.inputs[0], "ReduceMean");
  const product = producedBy(squares?.inputs[0], "Mul");
  const centred = producedBy(product?.inputs[0], "Sub");
  if (!mean || !squares || !product || !centred) return undefined;
  if (channelMean(squares.outputs[0], product.outputs[0]) !== squares) return undefined;
  if (product.inputs[1] !== product.inputs[0]) return undefined;
  if (centred.inputs[0] !== x || centred.inputs[1] !== mean.outputs[0]) return undefined;
  const privateNodes = readers.get(centred.outputs[0]) === 2 &&
      readers.get(product.outputs[0]) === 1
    ? [centred, product]
    : [];
  return { bn, mean, variance: squares, privateNodes };
}

/**
 * The node replacements that compute training BatchNorm statistics with ORT's
 * CPU training-mode BatchNormalization, for `nodes` (live, in order): the mean
 * ReduceMean becomes the training-mode node (output 0 under the original
 * BatchNormalization's output name) and a Reshape of its mean, the variance
 * ReduceMean a Reshape of its variance, and the original BatchNormalization,
 * the Sub and the Mul (when nothing else reads them) nothing. Each pattern is
 * claimed by the first BatchNormalization reading its statistics; a later one
 * (a backward recompute) reads the same statistics unchanged.
 * `constants` collects the initializers the nodes read (shared by name within
 * the graph `graphName`, which prefixes their names).
 */
export function batchStatisticsNodes(
  nodes: Node[],
  constants: Map<string, TensorProto>,
  graphName: string,
): Map<Node, NodeProto[]> {
  const readers = new Map<Tensor, number>();
  for (const node of nodes) {
    for (const t of node.inputs) if (t) readers.set(t, (readers.get(t) ?? 0) + 1);
  }
  const out = new Map<Node, NodeProto[]>();
  const claimed = new Set<Node>();
  for (const node of nodes) {
    const found = matchStatistics(node, readers);
    if (!found || claimed.has(found.mean)) continue;
    claimed.add(found.mean);
    const { bn, mean, variance } = found;
    const [x, scale, bias] = bn.inputs as Tensor[];
    // ORT's kernel writes its running statistics into the buffers of inputs 3 and 4 (they
    // alias). Those inputs are therefore computed each run, one per node: bias·c and scale·c
    // with a constant c ≈ 1 of its own, so that ORT neither shares the constants nor merges
    // the products (momentum 0 multiplies them by 0: any finite value will do). One
    // initializer fed to every node kept what each run wrote there (an infinite mean made
    // every later one NaN); one tensor shared by two nodes let the second overwrite the
    // first one's statistics (tests/batch_statistics_test.ts catches both).
    const seed = (index: number) => {
      const value = 1 + index / 4096;
      const key = `${graphName}/batch_statistics_seed/${index}`;
      constants.set(key, {
        name: key,
        dataType: ONNX_DTYPE_CODE.float32,
        dims: [],
        rawData: new Uint8Array(new Float32Array([value]).buffer),
      });
      return key;
    };
    const keptShape = (t: Tensor) =>
      shapeInitializer(constants, `${graphName}/batch_statistics_shape`, t.shape as number[]);
    const stat = (part: string) => `${mean.outputs[0].name}/batch_${part}`;
    out.set(mean, [
      {
        name: `${bn.name}/input_mean`,
        opType: "Mul",
        input: [bias.name, seed(2 * claimed.size - 1)],
        output: [stat("input_mean")],
      },
      {
        name: `${bn.name}/input_variance`,
        opType: "Mul",
        input: [scale.name, seed(2 * claimed.size)],
        output: [stat("input_variance")],
      },
      {
        name: `${bn.name}/training_mode`,
        opType: "BatchNormalization",
        input: [x.name, scale.name, bias.name, stat("input_mean"), stat("input_variance")],
        output: [bn.outputs[0].name, stat("mean"), stat("variance")],
        attribute: [
          { name: "epsilon", type: AT.FLOAT, f: Math.fround((bn.attrs.epsilon as number) ?? 1e-5) },
          { name: "momentum", type: AT.FLOAT, f: 0 },
          { name: "training_mode", type: AT.INT, i: 1 },
        ],
      },
      {
        name: `${mean.name}/batch_mean`,
        opType: "Reshape",
        input: [stat("mean"), keptShape(mean.outputs[0])],
        output: [mean.outputs[0].name],
      },
    ]);
    out.set(variance, [{
      name: `${variance.name}/batch_variance`,
      opType: "Reshape",
      input: [stat("variance"), keptShape(variance.outputs[0])],
      output: [variance.outputs[0].name],
    }]);
    out.set(bn, []);
    for (const dropped of found.privateNodes) out.set(dropped, []);
  }
  return out;
}
