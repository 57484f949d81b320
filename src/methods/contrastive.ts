/**
 * The contrastive training graph shared by every method: two views through
 * encoder and head, a contrastive loss over the 2N embeddings. A method
 * (SimCLR, SDCLR) only decides which branch each view takes; the loss
 * (NT-Xent or the ETH weighted loss) is chosen independently, so any
 * combination builds from one spec.
 */
import { Graph, type Tensor } from "../onnx/mod.ts";
import {
  ntXentGraph,
  weightedNtXentGraph,
  type WeightedNtXentGraphOptions,
} from "../losses/mod.ts";
import {
  type BufferUpdate,
  declareMasks,
  encoder,
  type HeadConfig,
  ParamStore,
  projectionHead,
  type ResNetConfig,
} from "../nn/mod.ts";
import type { GraphOptimizer } from "../optim/mod.ts";
import { buildFusedStep, type FusedStepLayout, type TrainableParam } from "../train/fused_step.ts";

/** The loss of a contrastive step. */
export type ContrastiveLossSpec =
  | { type: "ntxent"; temperature: number }
  | ({ type: "weighted_ntxent" } & Omit<WeightedNtXentGraphOptions, "pairing">);

/** Which network each view goes through. */
export type MethodSpec =
  | { name: "simclr" }
  /** SDCLR: view 2 through the pruned branch (masked conv weights, BN set 2). */
  | { name: "sdclr" };

/** Everything that fixes the shape of a contrastive training graph. */
export interface ContrastiveSpec {
  encoder: ResNetConfig;
  head: HeadConfig;
  loss: ContrastiveLossSpec;
  method: MethodSpec;
  /** Images per step (2N views). */
  batchSize: number;
  imageSize: number;
}

/** The forward graph of a contrastive step, before gradients. */
export interface ContrastiveGraph {
  graph: Graph;
  store: ParamStore;
  loss: Tensor;
  /** Per-view losses [2N]: rows 0..N−1 are view 1, N..2N−1 view 2. */
  perAnchor: Tensor;
  params: TrainableParam[];
  buffers: BufferUpdate[];
  /** Names of the per-step inputs besides parameters/buffers/state. */
  inputs: { view1: string; view2: string; mu?: string; masks: string[] };
}

/** Builds the forward pass and loss of one contrastive step (train-mode BN). */
export function buildContrastiveGraph(
  spec: ContrastiveSpec,
  name = "contrastive_step",
): ContrastiveGraph {
  const graph = new Graph(name);
  const dual = spec.method.name === "sdclr";
  const store = new ParamStore(graph, { bnBranches: dual ? 2 : 1 });
  const shape = [spec.batchSize, 3, spec.imageSize, spec.imageSize];
  const view1 = graph.input("view1", "float32", shape);
  const view2 = graph.input("view2", "float32", shape);

  let embeddings: Tensor;
  const buffers: BufferUpdate[] = [];
  let maskNames: string[] = [];
  if (!dual) {
    const views = graph.op("Concat", [view1, view2], { axis: 0 }, "views");
    const features = encoder(store, views, spec.encoder, { train: true });
    const projected = projectionHead(store, features.output, spec.head, { train: true });
    buffers.push(...features.updates, ...projected.updates);
    embeddings = projected.output;
  } else {
    const dense = encoder(store, view1, spec.encoder, { train: true, branch: 0 });
    const masks = declareMasks(store, "encoder.");
    maskNames = Object.values(masks).map((t) => t.name);
    const pruned = encoder(store, view2, spec.encoder, { train: true, branch: 1, masks });
    const head1 = projectionHead(store, dense.output, spec.head, { train: true, branch: 0 });
    const head2 = projectionHead(store, pruned.output, spec.head, { train: true, branch: 1 });
    buffers.push(...dense.updates, ...pruned.updates, ...head1.updates, ...head2.updates);
    embeddings = graph.op("Concat", [head1.output, head2.output], { axis: 0 }, "embeddings");
  }

  let mu: Tensor | undefined;
  const { loss, perAnchor } = spec.loss.type === "ntxent"
    ? ntXentGraph(embeddings, { temperature: spec.loss.temperature, pairing: "halves" })
    : weightedNtXentGraph(embeddings, mu = graph.input("mu", "float32", []), {
      ...spec.loss,
      pairing: "halves",
    });
  const params = store.params().map((p) => ({
    tensor: p.tensor,
    meta: { name: p.name, isBnOrBias: p.noLarsAdapt },
  }));
  return {
    graph,
    store,
    loss,
    perAnchor,
    params,
    buffers,
    inputs: { view1: view1.name, view2: view2.name, mu: mu?.name, masks: maskNames },
  };
}

/** A contrastive forward graph completed into the fused training step. */
export interface ContrastiveStep extends ContrastiveGraph {
  layout: FusedStepLayout;
}

/** Builds the fused training step (loss, gradients, optimizer update) of a contrastive spec. */
export function buildContrastiveStep(
  spec: ContrastiveSpec,
  optimizer: GraphOptimizer,
  options: { outputGradients?: boolean; name?: string } = {},
): ContrastiveStep {
  const built = buildContrastiveGraph(spec, options.name);
  const layout = buildFusedStep({
    graph: built.graph,
    loss: built.loss,
    params: built.params,
    buffers: built.buffers,
    optimizer,
    extraOutputs: { per_anchor_loss: built.perAnchor },
    stepScalars: built.inputs.mu ? [built.graph.findInput(built.inputs.mu)!] : [],
    outputGradients: options.outputGradients,
  });
  return { ...built, layout };
}

/** Eval-mode encoder graph: images [batch, 3, H, W] → features (dense branch, BN set 1). */
export function buildFeatureGraph(
  spec: Pick<ContrastiveSpec, "encoder" | "method" | "imageSize">,
  batch: number | string = "batch",
): { graph: Graph; store: ParamStore } {
  const graph = new Graph("features");
  const store = new ParamStore(graph, { bnBranches: spec.method.name === "sdclr" ? 2 : 1 });
  const images = graph.input("images", "float32", [batch, 3, spec.imageSize, spec.imageSize]);
  const features = encoder(store, images, spec.encoder, { train: false, branch: 0 });
  graph.output(features.output, "features");
  return { graph, store };
}
