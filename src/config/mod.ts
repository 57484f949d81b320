/** Experiment configs: our YAML format, the original ETH format, loading and overrides. */
export { ConfigError, describeValue, keyPath } from "./errors.ts";
export {
  AUGMENTATION_RECIPES,
  type AugmentationInput,
  type AugmentationRecipe,
  type AugmentationTransforms,
  type BlurParams,
  type ColorJitterParams,
  type CropParams,
  type FlipParams,
  type GrayscaleParams,
  recipeParams,
  resolveAugmentation,
  TRANSFORM_ORDER,
} from "./augmentation.ts";
export {
  BFLOAT16_UNSUPPORTED,
  type ConfigSections,
  configuredClassCount,
  type DataConfig,
  DATASET_CLASSES,
  DATASETS,
  DEFAULT_STEPS_PER_RUN,
  type DeviceChoice,
  DEVICES,
  encoderFeatureDim,
  type EvaluationConfig,
  type ExperimentConfig,
  type ExperimentConfigInput,
  ExperimentConfigSchema,
  type HeadConfig,
  headDims,
  INPUT_NORMALIZATIONS,
  type InputNormalization,
  type LossConfig,
  type LrScheduleConfig,
  type MeanSchedule,
  type MethodConfig,
  type ModelConfig,
  type OptimizerConfig,
  type OutputConfig,
  type Precision,
  PRECISIONS,
  type RuntimeSection,
  SPLIT_KEYS,
  type SplitKey,
  splitReaders,
  type TrainConfig,
  type WeightedNtXentConfig,
} from "./schema.ts";
export type { AugmentationConfig } from "./schema.ts";
export {
  type EthConfig,
  EthConfigSchema,
  ethEffectiveConfig,
  isEthDocument,
  mapEthConfig,
} from "./eth.ts";
export {
  type LoadedConfig,
  parseConfigDocument,
  parseEthConfig,
  parseExperimentConfig,
} from "./parse.ts";
export {
  applyOverrides,
  type ConfigOverrides,
  parseSetOverride,
  type SetOverride,
} from "./overrides.ts";
export { loadConfig, parseConfigText } from "./load.ts";
