/**
 * The data layer: CIFAR-10/100 (binary and python layouts), image folders and list files,
 * `.npy` index splits, the long-tail split maker, the epoch loader, a decoded-data-set cache and
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
  listImageFolder,
  loadImageFolder,
  loadImageList,
  readImageList,
} from "./image_folder.ts";
export { cachedDataset, loadDatasetCache, saveDatasetCache } from "./cache.ts";
export { type Batch, EpochLoader, type EpochLoaderOptions } from "./loader.ts";
export {
  CIFAR_ARCHIVES,
  CIFAR_BASE_URL,
  dataFetchCommand,
  type DataFetchOptions,
  type DataFetchResult,
} from "./fetch.ts";
export { readFileBytes, readMaybeGzipped } from "./files.ts";
