/**
 * Reverse-mode autodiff over builder graphs. The walker visits only nodes on a
 * path from the parameters to the loss, in reverse topological order, sums
 * gradients that reach a tensor twice, and stops at `stopGradient` nodes. The
 * per-op derivatives live in {@link GRAD_RULES}; a node may name its own rule
 * (`gradRule`, a composite's backward) or ask to be recomputed in the
 * backward instead of kept (`recompute`).
 */
import { isFloat } from "../onnx/dtype.ts";
import type { AttrValue, Graph, Node, Tensor } from "../onnx/graph.ts";
import * as ops from "../onnx/ops.ts";

/**
 * A gradient rule: given the node and the gradients of its outputs (undefined
 * where no gradient flows), returns one gradient per input (undefined for
 * inputs that take none: shapes, indices, comparisons).
 */
export type GradRule = (node: Node, dOutputs: (Tensor | undefined)[]) => (Tensor | undefined)[];

/**
 * The registry: ONNX op type → gradient rule, plus named rules of composites
 * (`<OpType>/<variant>`) that a node selects with `gradRule`.
 */
export const GRAD_RULES: Record<string, GradRule> = {};

/** Registers gradient rules (later registrations replace earlier ones). */
export function registerGradRules(rules: Record<string, GradRule>): void {
  Object.assign(GRAD_RULES, rules);
}

function nodesOnPath(graph: Graph, loss: Tensor, params: Set<Tensor>): Set<Node> {
  const dependsOnParam = new Set<Tensor>(params);
  const forward = new Set<Node>();
  for (const node of graph.nodes) {
    if (node.stopGradient) continue;
    if (node.inputs.some((t) => t && dependsOnParam.has(t))) {
      forward.add(node);
      for (const out of node.outputs) dependsOnParam.add(out);
    }
  }
  const needed = new Set<Tensor>([loss]);
  const onPath = new Set<Node>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!forward.has(node) || !node.outputs.some((t) => needed.has(t))) continue;
    onPath.add(node);
    for (const t of node.inputs) if (t && dependsOnParam.has(t)) needed.add(t);
  }
  return onPath;
}

/**
 * Attributes for the recomputed copy of a node that reads the same inputs as
 * the forward node: they must differ, or ONNX Runtime's common-subexpression
 * elimination merges the copy back into the forward node (which then stays
 * alive after all). Only ops with an attribute that does not change their
 * result can be recomputed from forward inputs.
 */
function distinctAttrs(node: Node): Record<string, AttrValue> {
  if (node.opType === "BatchNormalization" && (node.attrs.training_mode ?? 0) === 0) {
    // momentum only matters in training mode.
    return { ...node.attrs, momentum: node.attrs.momentum === 0.5 ? 0.25 : 0.5 };
  }
  throw new Error(
    `gradients: node ${node.name} (${node.opType}) is marked recompute but reads only forward ` +
      `values and has no attribute that can tell its copy apart; mark its consumers instead`,
  );
}

/** Options of {@link gradients}. */
export interface GradientOptions {
  /** Gradient of the loss w.r.t. itself (default: a constant 1 of the loss's shape). */
  seed?: Tensor;
}

/**
 * Adds the gradient subgraph of scalar `loss` w.r.t. `params` to the loss's
 * graph. Returns a map param → gradient tensor; a parameter the loss does not
 * depend on gets a zero tensor of its shape.
 */
export function gradients(
  loss: Tensor,
  params: Tensor[],
  options: GradientOptions = {},
): Map<Tensor, Tensor> {
  const graph = loss.graph;
  if (!isFloat(loss.dtype)) {
    throw new Error(`gradients: loss ${loss.name} has non-float dtype ${loss.dtype}`);
  }
  const paramSet = new Set(params);
  const onPath = nodesOnPath(graph, loss, paramSet);
  const pending = new Map<Tensor, Tensor[]>();
  const seed = options.seed ?? ops.full(graph, loss.shape, 1, loss.dtype);
  pending.set(loss, [seed]);

  const total = (t: Tensor): Tensor | undefined => {
    const parts = pending.get(t);
    if (!parts || parts.length === 0) return undefined;
    if (parts.length > 1) {
      const sum = graph.node("Sum", parts, {}, { name: `${t.name}_grad_sum` })[0];
      pending.set(t, [sum]);
      return sum;
    }
    return parts[0];
  };

  // Forward values made by `recompute` nodes are made again where a rule reads them, so
  // the forward's copy dies early; a copy serves every later rule that reads it.
  const recomputed = new Map<Tensor, Tensor>();
  const rematerialize = (t: Tensor): Tensor => {
    const producer = t.producer;
    if (!producer?.recompute) return t;
    if (!recomputed.has(t)) {
      const inputs = producer.inputs.map((x) => (x ? rematerialize(x) : null));
      const fromForward = inputs.every((x, k) => x === producer.inputs[k]);
      const copies = graph.node(
        producer.opType,
        inputs,
        fromForward ? distinctAttrs(producer) : producer.attrs,
        { name: `${producer.name}.recompute`, outputs: producer.outputs.length },
      );
      producer.outputs.forEach((out, k) => recomputed.set(out, copies[k]));
    }
    return recomputed.get(t)!;
  };
  const seen = (node: Node): Node =>
    [...node.inputs, ...node.outputs].some((t) => t?.producer?.recompute)
      ? {
        ...node,
        inputs: node.inputs.map((t) => (t ? rematerialize(t) : null)),
        outputs: node.outputs.map(rematerialize),
      }
      : node;

  graph.scope("grad", () => {
    for (let i = graph.nodes.length - 1; i >= 0; i--) {
      const node = graph.nodes[i];
      if (!onPath.has(node)) continue;
      const dOutputs = node.outputs.map(total);
      if (dOutputs.every((d) => d === undefined)) continue;
      const rule = GRAD_RULES[node.gradRule ?? node.opType];
      if (!rule) {
        throw new Error(
          `gradients: no gradient rule ${
            node.gradRule ?? `for op ${node.opType}`
          } (node ${node.name})`,
        );
      }
      const dInputs = rule(seen(node), dOutputs);
      node.inputs.forEach((input, k) => {
        const d = dInputs[k];
        if (!input || !d || !isFloat(input.dtype)) return;
        if (
          d.shape.length !== input.shape.length || d.shape.some((dim, j) => dim !== input.shape[j])
        ) {
          throw new Error(
            `gradients: rule for ${node.opType} (node ${node.name}) gave input ${k} a gradient of shape ` +
              `${d.shapeText}, expected ${input.shapeText}`,
          );
        }
        const list = pending.get(input) ?? [];
        list.push(d);
        pending.set(input, list);
      });
    }
  });

  const result = new Map<Tensor, Tensor>();
  for (const p of params) {
    result.set(p, total(p) ?? ops.full(graph, p.shape, 0, p.dtype));
  }
  return result;
}
