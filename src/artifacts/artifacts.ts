/**
 * Training artifacts of a config, in ONNX Runtime's training-artifact layout
 * plus the fused step the runner uses, written to `<outDir>/<experiment>/`:
 *
 * - `training_model.onnx`: views (+ μ, + SDCLR masks) + parameters + BN
 *   buffers → loss, `<param>_grad`, `<buffer>_new` (train-mode BN);
 * - `eval_model.onnx`: images [batch, 3, H, W] + parameters + buffers →
 *   features and projections (eval-mode BN, dense branch; any batch);
 * - `optimizer_model.onnx`: parameters + `<param>_grad` + optimizer state +
 *   lr (+ step) → `<param>_new` + `<state>_new`;
 * - `train_step.onnx`: the fused step (loss, gradients and update in one graph);
 * - `checkpoint.safetensors`: initial parameters and BN buffers (drawn from the
 *   config seed) and zero optimizer state;
 * - `manifest.json`: every input and output of every graph with shape, dtype
 *   and role, parameter counts and file sizes.
 *
 * The graphs hold no weight values (parameters are inputs), and their bytes
 * depend only on the config and the code, so committed copies can be checked
 * for staleness. Training graphs are static-shaped at the config's
 * `train.batch_size`: BN statistics and the 2N×2N loss need a fixed 2N.
 */
import { join } from "node:path";
import { gradients } from "../autodiff/mod.ts";
import type { ExperimentConfig } from "../config/mod.ts";
import {
  buildContrastiveGraph,
  buildContrastiveStep,
  type ContrastiveSpec,
  type ContrastiveStep,
} from "../methods/contrastive.ts";
import {
  contrastiveSpecFromConfig,
  optimizerFromConfig,
  type OptimizerPlan,
} from "../methods/from_config.ts";
import { encoder, initParams, ParamStore, projectionHead, resnetParamCount } from "../nn/mod.ts";
import { allocHost, type DType, encodeModel, Graph, type Shape, type Tensor } from "../onnx/mod.ts";
import { createOptimizer, type GraphOptimizer, optimizerStateKey } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { nextName } from "../train/fused_step.ts";
import { writeFileAtomic, writeTextAtomic } from "../util/atomic.ts";
import { Rng } from "../util/rng.ts";
import { saveCheckpoint } from "./checkpoint.ts";

/** Version of the manifest layout. */
export const ARTIFACT_FORMAT = 1;

/** File names inside an artifact folder. */
export const ARTIFACT_FILES = {
  training: "training_model.onnx",
  eval: "eval_model.onnx",
  optimizer: "optimizer_model.onnx",
  trainStep: "train_step.onnx",
  checkpoint: "checkpoint.safetensors",
  manifest: "manifest.json",
} as const;

/** The graph files, in the order they are written and listed. */
export const GRAPH_FILES = [
  ARTIFACT_FILES.training,
  ARTIFACT_FILES.eval,
  ARTIFACT_FILES.optimizer,
  ARTIFACT_FILES.trainStep,
] as const;

/** What one input or output of an artifact graph holds. */
export type ArtifactRole =
  | "view"
  | "images"
  | "mask"
  | "scalar"
  | "param"
  | "buffer"
  | "optimizer_state"
  | "gradient"
  | "loss"
  | "per_anchor_loss"
  | "param_update"
  | "buffer_update"
  | "optimizer_state_update"
  | "features"
  | "projections";

/** One graph input or output in the manifest. */
export interface ManifestValue {
  name: string;
  /** Static dims, or a name (`batch`) where any size works. */
  shape: Shape;
  dtype: DType;
  role: ArtifactRole;
}

/** Inputs and outputs of one graph file. */
export interface ManifestGraph {
  inputs: ManifestValue[];
  outputs: ManifestValue[];
}

/** `manifest.json`. */
export interface ArtifactManifest {
  format: number;
  experiment: string;
  /** The graph-level spec the files were built from (also fixes every shape). */
  spec: ContrastiveSpec;
  optimizer: OptimizerPlan;
  seed: number;
  /** Trainable scalars of everything in the step (encoder, both BN sets for SDCLR, head). */
  param_count: number;
  /** Trainable scalars of one encoder without head (torchvision's count). */
  encoder_param_count: number;
  /** Scalars of the BN running statistics. */
  buffer_count: number;
  /** Tensors in the checkpoint: the param, buffer and optimizer_state inputs of train_step. */
  checkpoint_tensors: number;
  graphs: Record<string, ManifestGraph>;
  /** Bytes of each written file except the manifest itself. */
  files: Record<string, number>;
}

/** The four graphs of a config with what describes them. */
export interface ArtifactGraphs {
  spec: ContrastiveSpec;
  optimizer: OptimizerPlan;
  /** The parameter store of the fused step (every parameter and buffer). */
  store: ParamStore;
  step: ContrastiveStep;
  /** Graph per file name, with the manifest entry of each. */
  graphs: Record<string, { graph: Graph; manifest: ManifestGraph }>;
}

type RoleTable = Map<string, ArtifactRole>;

function describe(
  graph: Graph,
  file: string,
  inputs: RoleTable,
  outputs: RoleTable,
): ManifestGraph {
  const entry =
    (side: "input" | "output", table: RoleTable) =>
    (t: { name: string; shape: Shape; dtype: DType }): ManifestValue => {
      const role = table.get(t.name);
      if (role === undefined) {
        throw new Error(
          `${file}: ${side} ${t.name} has no role in the manifest (a builder change?)`,
        );
      }
      return { name: t.name, shape: [...t.shape], dtype: t.dtype, role };
    };
  return {
    inputs: graph.inputs.map(entry("input", inputs)),
    outputs: graph.outputs.map(entry("output", outputs)),
  };
}

/** Roles of the inputs every contrastive graph shares: views, μ, masks, parameters, buffers. */
function modelInputRoles(
  store: ParamStore,
  inputs: { view1: string; view2: string; mu?: string; masks: string[] },
): RoleTable {
  const roles: RoleTable = new Map([[inputs.view1, "view"], [inputs.view2, "view"]]);
  if (inputs.mu) roles.set(inputs.mu, "scalar");
  for (const m of inputs.masks) roles.set(m, "mask");
  for (const p of store.params()) roles.set(p.name, "param");
  for (const b of store.buffers()) roles.set(b.name, "buffer");
  return roles;
}

function trainingModel(spec: ContrastiveSpec) {
  const built = buildContrastiveGraph(spec, "training_model");
  const { graph, loss, params, buffers, store } = built;
  const grads = gradients(loss, params.map((p) => p.tensor));
  const outputs: RoleTable = new Map([["loss", "loss"]]);
  graph.output(loss, "loss");
  for (const p of params) {
    const name = `${p.tensor.name}_grad`;
    graph.output(grads.get(p.tensor)!, name);
    outputs.set(name, "gradient");
  }
  for (const b of buffers) {
    graph.output(b.updated, nextName(b.input.name));
    outputs.set(nextName(b.input.name), "buffer_update");
  }
  const inputs = modelInputRoles(store, built.inputs);
  return { graph, manifest: describe(graph, ARTIFACT_FILES.training, inputs, outputs) };
}

function evalModel(spec: ContrastiveSpec) {
  const graph = new Graph("eval_model");
  const store = new ParamStore(graph, { bnBranches: spec.method.name === "sdclr" ? 2 : 1 });
  const size = spec.imageSize;
  const images = graph.input("images", "float32", ["batch", 3, size, size]);
  const options = { train: false, branch: 0 };
  const features = encoder(store, images, spec.encoder, options);
  const projections = projectionHead(store, features.output, spec.head, options);
  graph.output(features.output, "features");
  graph.output(projections.output, "projections");
  const inputs: RoleTable = new Map([["images", "images"]]);
  for (const p of store.params()) inputs.set(p.name, "param");
  for (const b of store.buffers()) inputs.set(b.name, "buffer");
  const outputs: RoleTable = new Map([["features", "features"], ["projections", "projections"]]);
  return { graph, manifest: describe(graph, ARTIFACT_FILES.eval, inputs, outputs) };
}

function optimizerModel(store: ParamStore, optimizer: GraphOptimizer) {
  const graph = new Graph("optimizer_model");
  const inputs: RoleTable = new Map();
  const outputs: RoleTable = new Map();
  const scalars: Record<string, Tensor> = {};
  for (const name of optimizer.scalarInputs) {
    scalars[name] = graph.input(name, store.dtype, []);
    inputs.set(name, "scalar");
  }
  for (const p of store.params()) {
    const param = graph.input(p.name, p.dtype, [...p.shape]);
    const grad = graph.input(`${p.name}_grad`, p.dtype, [...p.shape]);
    const slots = optimizer.stateSlots.map((slot) => optimizerStateKey(p.name, slot));
    const state = slots.map((name) => graph.input(name, p.dtype, [...p.shape]));
    inputs.set(p.name, "param").set(grad.name, "gradient");
    slots.forEach((name) => inputs.set(name, "optimizer_state"));
    const updated = optimizer.update(param, grad, state, scalars, {
      name: p.name,
      isBnOrBias: p.noLarsAdapt,
    });
    graph.output(updated.param, nextName(p.name));
    outputs.set(nextName(p.name), "param_update");
    updated.state.forEach((s, k) => {
      graph.output(s, nextName(slots[k]));
      outputs.set(nextName(slots[k]), "optimizer_state_update");
    });
  }
  return { graph, manifest: describe(graph, ARTIFACT_FILES.optimizer, inputs, outputs) };
}

function trainStepDescription(step: ContrastiveStep): ManifestGraph {
  const inputs = modelInputRoles(step.store, step.inputs);
  const outputs: RoleTable = new Map([[step.layout.loss, "loss"]]);
  for (const s of step.layout.scalars) inputs.set(s.name, "scalar");
  for (const c of step.layout.carried) {
    inputs.set(c.input, c.role);
    outputs.set(c.output, `${c.role}_update`);
  }
  for (const name of step.layout.extras) {
    if (name !== "per_anchor_loss") {
      throw new Error(`${ARTIFACT_FILES.trainStep}: extra output ${name} has no manifest role`);
    }
    outputs.set(name, "per_anchor_loss");
  }
  return describe(step.graph, ARTIFACT_FILES.trainStep, inputs, outputs);
}

/** Builds the four graphs of `config` (nothing is written). */
export function buildArtifactGraphs(config: ExperimentConfig): ArtifactGraphs {
  const spec = contrastiveSpecFromConfig(config);
  const plan = optimizerFromConfig(config.optimizer);
  const optimizer = createOptimizer(plan.optimizer);
  const step = buildContrastiveStep(spec, optimizer, { name: "train_step" });
  const graphs: ArtifactGraphs["graphs"] = {
    [ARTIFACT_FILES.training]: trainingModel(spec),
    [ARTIFACT_FILES.eval]: evalModel(spec),
    [ARTIFACT_FILES.optimizer]: optimizerModel(step.store, optimizer),
    [ARTIFACT_FILES.trainStep]: { graph: step.graph, manifest: trainStepDescription(step) },
  };
  return { spec, optimizer: plan, store: step.store, step, graphs };
}

/**
 * Initial training state of a fused step: parameters and buffers drawn with
 * `initParams(store.entries(), new Rng(seed, "init"))`, optimizer state zero;
 * `extra` gives carried values outside the store (a dynamic loss scale).
 * Keys are the step's input names (optimizer state: `<param>.<slot>`).
 */
export function initialTrainingState(
  step: ContrastiveStep,
  seed: number,
  extra: ReadonlyMap<string, HostTensor> = new Map(),
): Map<string, HostTensor> {
  const values = initParams(step.store.entries(), new Rng(seed, "init"));
  for (const [name, value] of extra) values.set(name, value);
  for (const c of step.layout.carried) {
    if (values.has(c.input)) continue;
    if (c.role !== "optimizer_state") {
      throw new Error(`initial state: ${c.role} ${c.input} is not declared in the parameter store`);
    }
    const shape = c.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    values.set(c.input, { dtype: c.dtype, shape, data: allocHost(c.dtype, size) });
  }
  return values;
}

/** Options of {@link writeArtifacts}. */
export interface WriteArtifactsOptions {
  /** Write `checkpoint.safetensors` (default true; the manifest then lists its size). */
  checkpoint?: boolean;
}

/** What {@link writeArtifacts} wrote. */
export interface ArtifactsResult {
  /** The folder `<outDir>/<experiment>`. */
  dir: string;
  manifest: ArtifactManifest;
  /** Bytes per written file, manifest included. */
  files: Record<string, number>;
}

function scalarCount(shapes: Iterable<{ shape: readonly number[] }>): number {
  let n = 0;
  for (const { shape } of shapes) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Serializes the manifest with one line per graph input/output, so a diff of
 * two manifests reads value by value.
 */
export function formatManifest(manifest: ArtifactManifest): string {
  const text = JSON.stringify(manifest, null, 2);
  // Each {"name", "shape", "dtype", "role"} object spans several lines; fold it to one.
  return text.replace(/\{\n\s*"name": [^{}]*?"role": "[a-z_]+"\n\s*\}/g, (block) => {
    const v = JSON.parse(block) as ManifestValue;
    const fields = [
      `"name": ${JSON.stringify(v.name)}`,
      `"shape": ${JSON.stringify(v.shape)}`,
      `"dtype": ${JSON.stringify(v.dtype)}`,
      `"role": ${JSON.stringify(v.role)}`,
    ];
    return `{ ${fields.join(", ")} }`;
  }) + "\n";
}

/**
 * Writes the artifacts of `config` to `<outDir>/<experiment>/`, each file
 * atomically (temp file + rename); returns the manifest and file sizes.
 */
export async function writeArtifacts(
  config: ExperimentConfig,
  outDir: string,
  options: WriteArtifactsOptions = {},
): Promise<ArtifactsResult> {
  const built = buildArtifactGraphs(config);
  const dir = join(outDir, config.experiment);
  await Deno.mkdir(dir, { recursive: true });
  const files: Record<string, number> = {};
  for (const file of GRAPH_FILES) {
    const bytes = encodeModel(built.graphs[file].graph);
    await writeFileAtomic(join(dir, file), bytes);
    files[file] = bytes.length;
  }
  const carried = built.step.layout.carried;
  if (options.checkpoint ?? true) {
    const state = initialTrainingState(built.step, config.seed);
    const path = join(dir, ARTIFACT_FILES.checkpoint);
    await saveCheckpoint(path, {
      tensors: Object.fromEntries(carried.map((c) => [c.input, state.get(c.input)!])),
      meta: { experiment: config.experiment, seed: config.seed, step: 0, epoch: 0 },
    });
    files[ARTIFACT_FILES.checkpoint] = (await Deno.stat(path)).size;
  }
  const manifest: ArtifactManifest = {
    format: ARTIFACT_FORMAT,
    experiment: config.experiment,
    spec: built.spec,
    optimizer: built.optimizer,
    seed: config.seed,
    param_count: built.store.count(),
    encoder_param_count: resnetParamCount(built.spec.encoder),
    buffer_count: scalarCount(built.store.buffers()),
    checkpoint_tensors: carried.length,
    graphs: Object.fromEntries(GRAPH_FILES.map((f) => [f, built.graphs[f].manifest])),
    files: { ...files },
  };
  const text = formatManifest(manifest);
  await writeTextAtomic(join(dir, ARTIFACT_FILES.manifest), text);
  files[ARTIFACT_FILES.manifest] = new TextEncoder().encode(text).length;
  return { dir, manifest, files };
}
