/**
 * The data layer: CIFAR-10/100 (binary and python layouts), image folders and list files (as
 * fixed-size evaluation sets or whole images of different sizes for random crops),
 * `.npy` index splits, the long-tail split maker, the epoch loader, decoded-data-set caches and
 * the `data fetch` / `data make-lt` commands.
 *
 * @module
 */

export {
  checkDataset,
  classCounts,
  imageBytes,
  type ImageDataset,
  subsetDataset,
} from "./dataset.ts";
export {
  CIFAR_FOLDERS,
  type CifarFormat,
  type CifarLabelKind,
  type CifarName,
  type CifarOptions,
  cifarRecordBytes,
  type CifarSplit,
  findCifarFiles,
  loadCifar,
  parseCifarBinary,
  parseCifarPickle,
} from "./cifar.ts";
export { CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from "./cifar_names.ts";
export {
  asIntList,
  asStringList,
  asUint8Array,
  dictEntry,
  type PickledArray,
  type PickleDict,
  type PickleValue,
  unpickle,
} from "./pickle.ts";
export {
  encodeInt64Npy,
  type NpyArray,
  parseNpy,
  readIndexNpy,
  readNpy,
  writeInt64Npy,
} from "./npy.ts";
export {
  complement,
  longTailCounts,
  type LongTailOptions,
  type LongTailSplit,
  makeLongTailSplit,
  makeTrainValSplit,
  type TrainValOptions,
  type TrainValSplit,
} from "./long_tail.ts";
export {
  LONG_TAIL_PRESETS,
  makeLtCommand,
  type MakeLtResult,
  readLabelsFile,
} from "./make_lt_command.ts";
export { decodeImage, type RgbImage } from "./image_decode.ts";
export { centerCrop, hwcToChw, resizeBilinear, resizeShorterSide } from "./resize.ts";
export {
  decodeImageEntries,
  type ImageEntry,
  type ImageTransformOptions,
  largestLabel,
  listClassNames,
  listImageFolder,
  loadImageFolder,
  loadImageList,
  readImageList,
} from "./image_folder.ts";
export {
  boundedChw,
  boundedSize,
  checkFullImages,
  decodeFullImages,
  type FullImageSet,
  fullImageSet,
  gatherCanvas,
  type ImageSource,
  isFullImageSet,
  subsetFullImages,
} from "./full_images.ts";
export {
  cachedDataset,
  cachedFullImages,
  loadDatasetCache,
  loadFullImageCache,
  saveDatasetCache,
  saveFullImageCache,
} from "./cache.ts";
export { type Batch, batchCount, EpochLoader, type EpochLoaderOptions } from "./loader.ts";
export {
  CIFAR_ARCHIVES,
  CIFAR_BASE_URL,
  dataFetchCommand,
  type DataFetchOptions,
  type DataFetchResult,
} from "./fetch.ts";
export { readFileBytes, readMaybeGzipped } from "./files.ts";
