/**
 * The fused training step: one graph computing loss, gradients and the
 * optimizer update, with parameters, buffers and optimizer state as inputs
 * and their new values as outputs; per-step scalars (lr, step, μ) are inputs.
 */
import { gradients } from "../autodiff/mod.ts";
import type { DType } from "../onnx/dtype.ts";
import type { Graph, Shape, Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";
import { type GraphOptimizer, optimizerStateKey, type ParamMeta } from "../optim/mod.ts";

/** A trainable parameter of a model graph. */
export interface TrainableParam {
  tensor: Tensor;
  meta: ParamMeta;
}

/** A buffer (BN running statistic) whose new value the graph computes. */
export interface BufferUpdate {
  input: Tensor;
  updated: Tensor;
}

/** What {@link buildFusedStep} needs: a graph holding the forward pass and loss. */
export interface FusedStepSpec {
  graph: Graph;
  loss: Tensor;
  params: TrainableParam[];
  buffers: BufferUpdate[];
  optimizer: GraphOptimizer;
  /** Extra values to fetch each step (e.g. accuracy, per-sample losses). */
  extraOutputs?: Record<string, Tensor>;
  /** Also output the raw gradients as `<param>_grad` (training-artifact layout). */
  outputGradients?: boolean;
  /** Scalar inputs of the forward graph fed each step by the host (e.g. μ). */
  stepScalars?: Tensor[];
  /** Gradient of the loss w.r.t. itself (default 1; loss scaling seeds it with S). */
  gradientSeed?: Tensor;
  /**
   * Rewrites the gradients before the update (loss scaling multiplies by 1/S);
   * `apply` (a bool scalar), when given, keeps parameters and optimizer state
   * unchanged on steps where it is false.
   */
  prepareGradients?: (grads: Tensor[]) => { grads: Tensor[]; apply?: Tensor };
}

/** One named value carried between steps by the host. */
export interface CarriedValue {
  /** Graph input name. */
  input: string;
  /** Graph output holding the next value. */
  output: string;
  dtype: DType;
  shape: Shape;
  role: "param" | "buffer" | "optimizer_state";
}

/** Inputs and outputs of a fused step graph, for the host loop and the manifest. */
export interface FusedStepLayout {
  carried: CarriedValue[];
  /** Scalar inputs fed every step (lr, step, ...). */
  scalars: { name: string; dtype: DType }[];
  /** Name of the loss output. */
  loss: string;
  /** Extra outputs fetched each step. */
  extras: string[];
}

/** Name of the new value of a carried input. */
export function nextName(input: string): string {
  return `${input}_new`;
}

/**
 * Adds gradients and the optimizer update to `spec.graph` and declares the
 * outputs; returns the layout the host loop feeds and fetches.
 */
export function buildFusedStep(spec: FusedStepSpec): FusedStepLayout {
  const { graph, loss, params, optimizer } = spec;
  if (loss.rank !== 0) {
    throw new Error(`fused step: loss ${loss.name} must be a scalar, got ${loss.shapeText}`);
  }
  const dtype = loss.dtype;
  const raw = gradients(loss, params.map((p) => p.tensor), { seed: spec.gradientSeed });
  const prepared = spec.prepareGradients?.(params.map((p) => raw.get(p.tensor)!)) ??
    { grads: params.map((p) => raw.get(p.tensor)!) };
  const apply = prepared.apply;
  const guarded = (next: Tensor, previous: Tensor) =>
    apply ? ops.where(apply, next, previous) : next;
  const scalarTensors: Record<string, Tensor> = {};
  const scalars = optimizer.scalarInputs.map((name) => {
    scalarTensors[name] = graph.findInput(name) ?? graph.input(name, dtype, []);
    return { name, dtype };
  });
  for (const t of spec.stepScalars ?? []) scalars.push({ name: t.name, dtype: t.dtype });

  const carried: CarriedValue[] = [];
  graph.output(loss, "loss");
  graph.scope("optimizer", () => {
    params.forEach(({ tensor, meta }, i) => {
      const grad = prepared.grads[i];
      if (spec.outputGradients) graph.output(grad, `${tensor.name}_grad`);
      const state = optimizer.stateSlots.map((slot) =>
        graph.input(optimizerStateKey(tensor.name, slot), tensor.dtype, tensor.shape)
      );
      const updated = optimizer.update(tensor, grad, state, scalarTensors, meta);
      graph.output(guarded(updated.param, tensor), nextName(tensor.name));
      carried.push({
        input: tensor.name,
        output: nextName(tensor.name),
        dtype: tensor.dtype,
        shape: tensor.shape,
        role: "param",
      });
      updated.state.forEach((s, k) => {
        const name = optimizerStateKey(tensor.name, optimizer.stateSlots[k]);
        graph.output(guarded(s, state[k]), nextName(name));
        carried.push({
          input: name,
          output: nextName(name),
          dtype: s.dtype,
          shape: s.shape,
          role: "optimizer_state",
        });
      });
    });
  });
  for (const { input, updated } of spec.buffers) {
    graph.output(updated, nextName(input.name));
    carried.push({
      input: input.name,
      output: nextName(input.name),
      dtype: input.dtype,
      shape: input.shape,
      role: "buffer",
    });
  }
  const extras: string[] = [];
  for (const [name, t] of Object.entries(spec.extraOutputs ?? {})) {
    graph.output(t, name);
    extras.push(name);
  }
  return { carried, scalars, loss: "loss", extras };
}
