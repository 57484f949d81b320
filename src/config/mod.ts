/** Experiment configs: our YAML format, the original ETH format, loading and overrides. */
export { ConfigError, describeValue, keyPath } from "./errors.ts";
export {
  AUGMENTATION_RECIPES,
  type AugmentationRecipe,
  recipeParams,
  resolveAugmentation,
  TRANSFORM_ORDER,
} from "./augmentation.ts";
export {
  configuredClassCount,
  DATASET_CLASSES,
  DATASETS,
  type DataConfig,
  type DeviceChoice,
  DEVICES,
  encoderFeatureDim,
  type EvaluationConfig,
  type ExperimentConfig,
  ExperimentConfigSchema,
  type HeadConfig,
  headDims,
  INPUT_NORMALIZATIONS,
  type LossConfig,
  type LrScheduleConfig,
  type MeanSchedule,
  type MethodConfig,
  type ModelConfig,
  type OptimizerConfig,
  type OutputConfig,
  type TrainConfig,
  type WeightedNtXentConfig,
} from "./schema.ts";
export type { AugmentationConfig } from "./schema.ts";
export { type EthConfig, EthConfigSchema, isEthDocument, mapEthConfig } from "./eth.ts";
export { type LoadedConfig, parseConfigDocument, parseEthConfig, parseExperimentConfig } from "./parse.ts";
export { applyOverrides, type ConfigOverrides, parseSetOverride } from "./overrides.ts";
export { loadConfig, parseConfigText } from "./load.ts";
