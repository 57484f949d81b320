/**
 * Times a training BatchNorm forward (src/nn/batchnorm.ts: batch mean and
 * biased variance by ReduceMean, Sub, Mul, ReduceMean, then inference-form
 * BatchNormalization) on ORT CPU, as exported plainly and with the
 * training-mode lowering of src/onnx/batch_statistics.ts, for ResNet-18's
 * activation shapes at 64 views (the bench step at batch 32). Both forms
 * take turns; prints the median ms per BatchNorm and the largest difference
 * of the outputs and statistics.
 *
 * Run: deno run -A bench/batch_statistics.ts [--runs 9] [--threads 2]
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { Graph, ops, type Tensor } from "../src/onnx/mod.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import { Rng } from "../src/util/rng.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "9" }, threads: { type: "string", default: "2" } },
});
const runs = Number(values.runs);
const threads = Number(values.threads);
/** BatchNorms chained per run, so that one run's fixed cost is shared. */
const CHAIN = 8;

const SHAPES = [[64, 64, 32, 32], [64, 128, 16, 16], [64, 256, 8, 8], [64, 512, 4, 4]];

/** CHAIN BatchNorms in train form on x + i·1e-7; outputs their summed outputs and the first's statistics. */
function buildGraph(shape: number[]): Graph {
  const graph = new Graph("batch_statistics");
  const channels = shape[1];
  const x = graph.input("x", "float32", shape);
  const weight = graph.input("weight", "float32", [channels]);
  const bias = graph.input("bias", "float32", [channels]);
  const sums: Tensor[] = [];
  for (let i = 0; i < CHAIN; i++) {
    const xi = ops.add(x, ops.scalarLike(x, i * 1e-7));
    const mean = ops.reduceMean(xi, [0, 2, 3], true);
    const centred = ops.sub(xi, mean);
    const variance = ops.reduceMean(ops.mul(centred, centred), [0, 2, 3], true);
    const meanC = ops.reshape(mean, [channels]);
    const varianceC = ops.reshape(variance, [channels]);
    const y = ops.batchNormalization(xi, weight, bias, meanC, varianceC, 1e-5);
    sums.push(ops.reduceSum(y, [0, 2, 3], false));
    if (i === 0) {
      graph.output(y, "y0");
      graph.output(meanC, "mean0");
      graph.output(varianceC, "variance0");
    }
  }
  graph.output(graph.op("Sum", sums), "total");
  return graph;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const rng = new Rng(7);
console.log(`ORT CPU, ${threads} threads, ${runs} interleaved runs after 2 warm-up runs`);
console.log("shape                  primitive ms  training-mode ms  ratio  max |Δy|   max |Δvar|");
for (const shape of SHAPES) {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = 1.5 + 0.6 * rng.normal();
  const channels = shape[1];
  const feeds = {
    x: new ort.Tensor("float32", data, shape),
    weight: new ort.Tensor("float32", new Float32Array(channels).fill(1.25), [channels]),
    bias: new ort.Tensor("float32", new Float32Array(channels).fill(0.5), [channels]),
  };
  const graph = buildGraph(shape);
  const sessions = await Promise.all(
    [false, true].map((batchStatistics) =>
      ort.InferenceSession.create(encodeModel(graph, { omitValueInfo: true, batchStatistics }), {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
      })
    ),
  );
  const times: number[][] = [[], []];
  const outputs: Record<string, ort.Tensor>[] = [];
  for (let r = 0; r < runs + 2; r++) {
    for (let k = 0; k < 2; k++) {
      const start = performance.now();
      outputs[k] = await sessions[k].run(feeds);
      if (r >= 2) times[k].push((performance.now() - start) / CHAIN);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const [plain, lowered] = times.map(median);
  const dy = maxDiff(outputs[0].y0.data as Float32Array, outputs[1].y0.data as Float32Array);
  const dv = maxDiff(
    outputs[0].variance0.data as Float32Array,
    outputs[1].variance0.data as Float32Array,
  );
  console.log(
    `${JSON.stringify(shape).padEnd(22)} ${plain.toFixed(2).padStart(12)}  ${
      lowered.toFixed(2).padStart(16)
    }  ${(lowered / plain).toFixed(2).padStart(5)}  ${dy.toExponential(1).padStart(8)}  ${
      dv.toExponential(1).padStart(9)
    }`,
  );
  await Promise.all(sessions.map((s) => s.release()));
}
