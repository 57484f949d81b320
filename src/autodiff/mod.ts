/**
 * Reverse-mode autodiff: {@link gradients} adds the gradient subgraph of a
 * scalar loss to its graph, using one rule per op from the registry.
 * @module
 */
import { registerGradRules } from "./gradients.ts";
import { ELEMENTWISE_RULES } from "./rules/elementwise.ts";
import { REDUCE_RULES } from "./rules/reduce.ts";

registerGradRules(ELEMENTWISE_RULES);
registerGradRules(REDUCE_RULES);

export { GRAD_RULES, type GradRule, gradients, type GradientOptions, registerGradRules } from "./gradients.ts";
export { sumToShape } from "./broadcast.ts";
