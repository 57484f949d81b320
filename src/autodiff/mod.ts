/**
 * Reverse-mode autodiff: {@link gradients} adds the gradient subgraph of a
 * scalar loss to its graph, using one rule per op from the registry.
 * @module
 */
import { registerGradRules } from "./gradients.ts";
import { ELEMENTWISE_RULES } from "./rules/elementwise.ts";
import { REDUCE_RULES } from "./rules/reduce.ts";
import { UNARY_RULES } from "./rules/unary.ts";
import { SHAPE_RULES } from "./rules/shape.ts";
import { LINALG_RULES } from "./rules/linalg.ts";
import { CONV_RULES } from "./rules/conv.ts";
import { POOL_RULES } from "./rules/pool.ts";
import { NORMALIZATION_RULES } from "./rules/normalization.ts";

registerGradRules(ELEMENTWISE_RULES);
registerGradRules(REDUCE_RULES);
registerGradRules(UNARY_RULES);
registerGradRules(SHAPE_RULES);
registerGradRules(LINALG_RULES);
registerGradRules(CONV_RULES);
registerGradRules(POOL_RULES);
registerGradRules(NORMALIZATION_RULES);

export {
  GRAD_RULES,
  type GradientOptions,
  gradients,
  type GradRule,
  registerGradRules,
} from "./gradients.ts";
export { sumToShape } from "./broadcast.ts";
export { BATCH_STATISTICS_RULE } from "./rules/normalization.ts";
