/**
 * Copies the nodes of one builder graph into another through
 * {@link Graph.node}, so every shape is checked again, with hooks to map the
 * source inputs, rename values and rewrite chosen nodes. The body of the
 * multi-step `Loop` (multi_step.ts) and the mixed-precision rewrite
 * (mixed_precision.ts) are both made this way.
 */
import type { Graph, Node, Tensor } from "../onnx/graph.ts";

/** Options of {@link copyGraph}. */
export interface CopyGraphOptions {
  /** The target value of a source graph input (called once per input reached). */
  input(source: Tensor): Tensor;
  /** Name of the copy of a source node, node output or initializer (default: unchanged). */
  rename?(name: string): string;
  /** Source nodes to copy, in topological order (default: all of them). */
  nodes?: readonly Node[];
  /**
   * Replacement outputs of a node, built in the target from its already
   * mapped `inputs`; undefined copies the node as it is.
   */
  rewrite?(node: Node, inputs: (Tensor | null)[]): Tensor[] | undefined;
}

/**
 * Copies `options.nodes` (default every node) of `source` into `target`;
 * returns the map from each source value reached to its copy. Initializers
 * are copied on first use.
 */
export function copyGraph(
  source: Graph,
  target: Graph,
  options: CopyGraphOptions,
): Map<Tensor, Tensor> {
  const rename = options.rename ?? ((name: string) => name);
  const copies = new Map<Tensor, Tensor>();
  const valueOf = (t: Tensor): Tensor => {
    const known = copies.get(t);
    if (known) return known;
    let copy: Tensor;
    if (t.kind === "input") copy = options.input(t);
    else if (t.kind === "initializer") {
      copy = target.initializer(rename(t.name), t.dtype, t.shape, t.constValue!);
    } else {
      throw new Error(
        `copyGraph: ${t.name} is read before the node computing it was copied from ${source.name}`,
      );
    }
    copies.set(t, copy);
    return copy;
  };
  for (const node of options.nodes ?? source.nodes) {
    const inputs = node.inputs.map((t) => (t ? valueOf(t) : null));
    let outputs = options.rewrite?.(node, inputs);
    if (outputs === undefined) {
      const name = rename(node.name);
      const names = node.outputs.map((t) => rename(t.name));
      outputs = target.node(node.opType, inputs, node.attrs, {
        name,
        outputs: node.outputs.length,
        // A single output named like its node needs no name of its own (Graph.node would suffix it).
        outputNames: names.length === 1 && names[0] === name ? undefined : names,
      });
      outputs.forEach((t, k) => (t.name = names[k]));
      if (node.stopGradient) outputs[0].producer!.stopGradient = true;
      if (node.gradRule) outputs[0].producer!.gradRule = node.gradRule;
      if (node.recompute) outputs[0].producer!.recompute = true;
    }
    if (outputs.length !== node.outputs.length) {
      throw new Error(
        `copyGraph: the rewrite of ${node.opType} node ${node.name} gave ${outputs.length} outputs, ` +
          `expected ${node.outputs.length}`,
      );
    }
    node.outputs.forEach((t, k) => copies.set(t, outputs[k]));
  }
  return copies;
}
