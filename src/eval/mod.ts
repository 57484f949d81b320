/**
 * Evaluation of a frozen encoder, every classifier trained through the fused
 * step: the ETH linear protocol (weight-decay search on a stratified split),
 * the SDCLR linear and few-shot probes (SGD, step decay, on-the-fly
 * crop + flip), the weighted kNN monitor, per-class accuracy, many/medium/few
 * groups and balancedness.
 *
 * ```ts
 * const encoder = await GraphEncoder.create(spec, values);
 * const report = await evaluateEncoder(encoder, data, config.evaluation, { seed: config.seed, groupCounts });
 * await encoder.release();
 * ```
 * @module
 */
export {
  checkFeatureSet,
  type Encoder,
  extractFeatures,
  type ExtractOptions,
  type FeatureGraphSpec,
  type FeatureSet,
  featureSubset,
  gatherRows,
  GraphEncoder,
  type ImageNormalization,
  probeImages,
} from "./features.ts";
export {
  ClassifierPredictor,
  type ClassifierWeights,
  FC_BIAS,
  FC_WEIGHT,
  LinearClassifier,
  normalLinearInit,
  oneHot,
  torchLinearInit,
} from "./classifier.ts";
export {
  type EthImagesOptions,
  type EthLinearConfig,
  ethLinearEval,
  ethLinearEvalImages,
  type EthLinearOptions,
  ethLinearOptions,
  type EthLinearResult,
  type EthSearchRow,
  logspace,
  type StratifiedSplit,
  stratifiedSplit,
} from "./linear_eth.ts";
export {
  type FewShotConfig,
  probeSchedule,
  type ProbeSets,
  type SdclrEpochRecord,
  type SdclrLinearConfig,
  sdclrLinearProbe,
  type SdclrProbeOptions,
  sdclrProbeOptions,
  type SdclrProbeResult,
} from "./linear_sdclr.ts";
export {
  type KnnConfig,
  knnEval,
  knnEvalImages,
  type KnnImagesOptions,
  type KnnOptions,
  knnOptions,
  type KnnResult,
  knnVote,
  l2NormalizeRows,
} from "./knn.ts";
export {
  type ClassGroup,
  classGroups,
  type GroupReport,
  groupReport,
  type GroupRule,
  groupRuleFromConfig,
  type GroupsConfigRule,
} from "./groups.ts";
export { accuracy, mean, perClassAccuracy, populationStd, topKAccuracy } from "./metrics.ts";
export {
  type EvalData,
  evaluateEncoder,
  type EvaluateOptions,
  type EvaluationReport,
  headlineScore,
  type ScoreMetric,
} from "./evaluate.ts";
