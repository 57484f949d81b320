/**
 * Frozen features: the {@link Encoder} abstraction every protocol takes, an
 * encoder over the eval-mode feature graph (BN with running statistics, dense
 * branch), and batched extraction of a data set's features.
 */
import type { ImageDataset } from "../data/dataset.ts";
import { buildFeatureGraph, type ContrastiveSpec } from "../methods/contrastive.ts";
import { paramFeeds } from "../nn/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import { imageBatch } from "../train/supervised.ts";
import type { Rng } from "../util/rng.ts";
import { ProgressBar } from "../util/progress.ts";

/** A frozen encoder: images [B, 3, H, W] float32 → features [B, D], row-major. */
export interface Encoder {
  features(images: HostTensor): Promise<Float32Array>;
}

/** Host-side per-channel normalization of [0, 1] images, (x − mean)/std. */
export interface ImageNormalization {
  mean: readonly number[];
  std: readonly number[];
}

/** Features of a set of labelled samples. */
export interface FeatureSet {
  /** count × dim values, row-major. */
  features: Float32Array;
  labels: Int32Array;
  count: number;
  dim: number;
  classCount: number;
}

/** What fixes the feature graph of an encoder. */
export type FeatureGraphSpec = Pick<ContrastiveSpec, "encoder" | "method" | "imageSize">;

/**
 * An {@link Encoder} running the eval-mode feature graph of `spec` (symbolic
 * batch) with fixed parameter values; the parameter feeds are built once.
 */
export class GraphEncoder implements Encoder {
  private constructor(
    readonly session: Session,
    readonly feeds: Record<string, HostTensor>,
  ) {}

  /** Builds the feature graph and opens its session; `values` holds every encoder parameter and BN buffer. */
  static async create(
    spec: FeatureGraphSpec,
    values: ReadonlyMap<string, HostTensor>,
    session: SessionOptions = {},
  ): Promise<GraphEncoder> {
    const { graph, store } = buildFeatureGraph(spec, "batch");
    const feeds = paramFeeds(store, values);
    return new GraphEncoder(await Session.create(graph, session), feeds);
  }

  /** Features of a batch of images. */
  async features(images: HostTensor): Promise<Float32Array> {
    const out = await this.session.run({ ...this.feeds, images }, ["features"]);
    return out.features.data as Float32Array;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

const UNIT_MEAN = [0, 0, 0];
const UNIT_STD = [1, 1, 1];

/**
 * Images at `indices` as float32 NCHW in [0, 1] (normalized when
 * `normalization` is given), with RandomCrop(pad 4) + horizontal flip drawn
 * from `augment` when it is not null.
 */
export function probeImages(
  data: ImageDataset,
  indices: ArrayLike<number>,
  augment: Rng | null,
  normalization: ImageNormalization | null = null,
): HostTensor {
  return imageBatch(
    data,
    indices,
    augment,
    normalization ? [...normalization.mean] : UNIT_MEAN,
    normalization ? [...normalization.std] : UNIT_STD,
  );
}

/** Options of {@link extractFeatures}. */
export interface ExtractOptions {
  /** Images per encoder call (default 256). */
  batchSize?: number;
  /** Host-side normalization (default none: the encoder gets [0, 1] images, e.g. it normalizes itself). */
  normalization?: ImageNormalization | null;
  /** RandomCrop(pad 4) + flip from this generator (default none: the eval transform). */
  augment?: Rng | null;
  /** The images to encode, in order (default all). */
  indices?: ArrayLike<number>;
  /** Number of classes (default `data.classes.length`). */
  classCount?: number;
  /** Label of a progress bar on stderr over the images (default: no bar). */
  progress?: string;
}

/** Features of (a subset of) a data set, batched through the encoder. */
export async function extractFeatures(
  encoder: Encoder,
  data: ImageDataset,
  options: ExtractOptions = {},
): Promise<FeatureSet> {
  const batchSize = options.batchSize ?? 256;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) {
    throw new Error(`extractFeatures: batchSize must be a positive integer, got ${batchSize}`);
  }
  const indices = options.indices ?? Int32Array.from({ length: data.count }, (_, i) => i);
  const count = indices.length;
  if (count === 0) throw new Error(`extractFeatures: ${data.source} has no images to encode`);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = data.labels[indices[i]];
  let features: Float32Array | null = null;
  let dim = 0;
  const bar = options.progress ? new ProgressBar(options.progress, count) : null;
  for (let start = 0; start < count; start += batchSize) {
    const idx = Array.from(
      { length: Math.min(batchSize, count - start) },
      (_, i) => indices[start + i],
    );
    const images = probeImages(data, idx, options.augment ?? null, options.normalization ?? null);
    const batch = await encoder.features(images);
    if (features === null) {
      dim = batch.length / idx.length;
      if (!(Number.isInteger(dim) && dim > 0)) {
        throw new Error(
          `extractFeatures: the encoder returned ${batch.length} values for ${idx.length} images`,
        );
      }
      features = new Float32Array(count * dim);
    } else if (batch.length !== idx.length * dim) {
      throw new Error(
        `extractFeatures: the encoder returned ${batch.length} values for ${idx.length} images of dim ${dim}`,
      );
    }
    features.set(batch, start * dim);
    bar?.tick(idx.length, { "images/s": Math.round((start + idx.length) / bar.seconds()) });
  }
  if (bar) bar.finish({ "images/s": Math.round(count / bar.seconds()) });
  return {
    features: features!,
    labels,
    count,
    dim,
    classCount: options.classCount ?? data.classes.length,
  };
}

/** The rows of `set` at `indices` (in that order). */
export function featureSubset(set: FeatureSet, indices: ArrayLike<number>): FeatureSet {
  return {
    features: gatherRows(set.features, set.dim, indices),
    labels: Int32Array.from({ length: indices.length }, (_, i) => set.labels[indices[i]]),
    count: indices.length,
    dim: set.dim,
    classCount: set.classCount,
  };
}

/** Rows `indices` of a row-major [n, dim] matrix, copied into a new [indices.length, dim] matrix. */
export function gatherRows(
  matrix: Float32Array,
  dim: number,
  indices: ArrayLike<number>,
): Float32Array {
  const out = new Float32Array(indices.length * dim);
  const rows = matrix.length / dim;
  for (let i = 0; i < indices.length; i++) {
    const r = indices[i];
    if (!(r >= 0 && r < rows)) {
      throw new Error(`gatherRows: row ${r} at ${i} is outside [0, ${rows})`);
    }
    out.set(matrix.subarray(r * dim, (r + 1) * dim), i * dim);
  }
  return out;
}

/** Checks that a feature set's arrays agree; `what` names it in the error. */
export function checkFeatureSet(set: FeatureSet, what: string): FeatureSet {
  if (set.features.length !== set.count * set.dim || set.labels.length !== set.count) {
    throw new Error(
      `${what}: ${set.features.length} feature values and ${set.labels.length} labels for ${set.count} samples ` +
        `of dim ${set.dim}`,
    );
  }
  for (let i = 0; i < set.count; i++) {
    const label = set.labels[i];
    if (!(label >= 0 && label < set.classCount)) {
      throw new Error(`${what}: label ${label} of sample ${i} is outside [0, ${set.classCount})`);
    }
  }
  return set;
}
