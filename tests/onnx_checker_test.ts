/**
 * Every kind of graph we build passes onnx 1.12's full checker
 * (`tools/check_onnx.py`, Debian python3-onnx). Skipped, with the reason
 * printed, where that package is absent.
 */
import { assert } from "./assert.ts";
import { gradients } from "../src/autodiff/mod.ts";
import { Graph, ops, saveModel } from "../src/onnx/mod.ts";
import { ntXentGraph, weightedNtXentGraph } from "../src/losses/mod.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import { buildFusedStep } from "../src/train/fused_step.ts";
import { crossEntropy, smallCnn } from "../src/train/supervised.ts";
import { PYTHON, pythonOnnxAvailable } from "./python_onnx.ts";

const available = pythonOnnxAvailable;
if (!available) console.log(`onnx checker test ignored: ${PYTHON} with python3-onnx not found`);

function quickstartStep(): Graph {
  const graph = new Graph("supervised_train_step");
  const x = graph.input("images", "float32", [8, 3, 16, 16]);
  const targets = graph.input("targets", "float32", [8, 10]);
  const { logits, params } = smallCnn(graph, x, { channels: [4, 8], classes: 10, imageSize: 16 });
  const loss = crossEntropy(logits, targets);
  buildFusedStep({
    graph,
    loss,
    params: params.map((p) => ({
      tensor: graph.findInput(p.name)!,
      meta: { name: p.name, isBnOrBias: p.kind === "bias" },
    })),
    buffers: [],
    optimizer: createOptimizer({ kind: "sgd", momentum: 0.9, weightDecay: 5e-4 }),
    outputGradients: true,
  });
  return graph;
}

function lossGraph(weighted: boolean): Graph {
  const graph = new Graph(weighted ? "weighted_nt_xent" : "nt_xent");
  const z = graph.input("z", "float32", [8, 16]);
  const mu = graph.input("mu", "float32", []);
  const { loss } = weighted
    ? weightedNtXentGraph(z, mu, {
      temperature: 0.1,
      sigma: 0.5,
      lowerBound: -1,
      upperBound: 1,
      normalization: "negatives_constant_total_weight",
    })
    : ntXentGraph(z, { temperature: 0.1, pairing: "halves" });
  graph.output(loss, "loss");
  graph.output(gradients(loss, [z]).get(z)!, "z_grad");
  return graph;
}

function symbolicBatchGraph(): Graph {
  const graph = new Graph("symbolic");
  const x = graph.input("x", "float32", ["batch", 3, 8, 8]);
  const w = graph.input("w", "float32", [4, 3, 3, 3]);
  const y = ops.globalAveragePool(ops.relu(ops.conv(x, w, null, { pads: [1, 1, 1, 1] })));
  const loss = ops.reduceMean(y, undefined, false);
  graph.output(loss, "loss");
  graph.output(gradients(loss, [w]).get(w)!, "w_grad");
  return graph;
}

Deno.test({
  name: "exported graphs pass onnx.checker.check_model(full_check=True)",
  ignore: !available,
  async fn() {
    const dir = await Deno.makeTempDir();
    const graphs = [quickstartStep(), lossGraph(false), lossGraph(true), symbolicBatchGraph()];
    for (const g of graphs) await saveModel(g, `${dir}/${g.name}.onnx`);
    const out = await new Deno.Command(PYTHON, { args: ["tools/check_onnx.py", dir] }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    await Deno.remove(dir, { recursive: true });
    assert(out.success, `checker failed:\n${text}`);
    assert(text.split("\n").filter((l) => l.startsWith("ok ")).length === graphs.length, text);
  },
});
