/**
 * The weighted kNN monitor of InstDisc/MoCo: features L2-normalized, cosine
 * similarity of every query to the bank, the k most similar bank samples vote
 * for their class with weight exp(similarity / T); top-1 accuracy. Similarity
 * and top-k run as an ORT graph (Gemm + TopK) over chunks of queries; the
 * votes (k per query) are summed on the host.
 */
import type { EvaluationConfig } from "../config/mod.ts";
import { Graph, ops } from "../onnx/mod.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import type { ImageDataset } from "../data/dataset.ts";
import {
  checkFeatureSet,
  type Encoder,
  extractFeatures,
  type FeatureSet,
  type ImageNormalization,
} from "./features.ts";
import { accuracy, perClassAccuracy } from "./metrics.ts";

/** The `evaluation.knn` section. */
export type KnnConfig = NonNullable<EvaluationConfig["knn"]>;

/** Options of {@link knnEval}. */
export interface KnnOptions {
  /** Neighbours per query (200); capped at the bank size. */
  k: number;
  /** Vote temperature T (0.1). */
  temperature: number;
  /** Queries per graph run (default 512). */
  chunkSize?: number;
  session?: SessionOptions;
}

/** Outcome of {@link knnEval}. */
export interface KnnResult {
  /** Top-1 accuracy on the queries, in [0, 1]. */
  accuracy: number;
  /** Accuracy per class (NaN for a class without queries). */
  perClassAccuracy: number[];
  /** Neighbours actually used: min(k, bank size). */
  k: number;
  temperature: number;
  seconds: number;
}

/** Options of the monitor from its config section. */
export function knnOptions(config: KnnConfig, session?: SessionOptions): KnnOptions {
  return { k: config.k, temperature: config.temperature, session };
}

/** Rows scaled to unit L2 norm, x / max(‖x‖, 1e-12) as torch's F.normalize. */
export function l2NormalizeRows(matrix: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(matrix.length);
  for (let r = 0; r < matrix.length / dim; r++) {
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += matrix[r * dim + j] ** 2;
    const scale = 1 / Math.max(Math.sqrt(sq), 1e-12);
    for (let j = 0; j < dim; j++) out[r * dim + j] = matrix[r * dim + j] * scale;
  }
  return out;
}

/**
 * The class voted for by one query's neighbours: Σ exp(sim/T) per class over
 * the neighbours' labels; the highest total wins (ties: the lower class).
 */
export function knnVote(
  similarities: ArrayLike<number>,
  neighbourLabels: ArrayLike<number>,
  classCount: number,
  temperature: number,
): number {
  const scores = new Float64Array(classCount);
  for (let j = 0; j < similarities.length; j++) {
    scores[neighbourLabels[j]] += Math.exp(similarities[j] / temperature);
  }
  let best = 0;
  for (let c = 1; c < classCount; c++) if (scores[c] > scores[best]) best = c;
  return best;
}

/** Weighted kNN accuracy of `queries` against the labelled `bank` (e.g. train → test features). */
export async function knnEval(
  bank: FeatureSet,
  queries: FeatureSet,
  options: KnnOptions,
): Promise<KnnResult> {
  const start = performance.now();
  checkFeatureSet(bank, "knn bank features");
  checkFeatureSet(queries, "knn query features");
  if (bank.dim !== queries.dim) {
    throw new Error(`knnEval: bank features are ${bank.dim}-d, queries ${queries.dim}-d`);
  }
  if (!(Number.isInteger(options.k) && options.k > 0)) {
    throw new Error(`evaluation.knn.k: expected a positive integer, got ${options.k}`);
  }
  if (!(options.temperature > 0)) {
    throw new Error(
      `evaluation.knn.temperature: expected a number > 0, got ${options.temperature}`,
    );
  }
  const { dim } = bank;
  const k = Math.min(options.k, bank.count);
  const classCount = Math.max(bank.classCount, queries.classCount);
  const chunkSize = options.chunkSize ?? 512;

  const graph = new Graph("knn_monitor");
  const q = graph.input("queries", "float32", ["queries", dim]);
  const b = graph.input("bank", "float32", [bank.count, dim]);
  const similarity = ops.gemm(q, b, null, { transB: true }, "cosine_similarity");
  const [values, indices] = graph.node(
    "TopK",
    [similarity, ops.ints(graph, [k])],
    { axis: 1, largest: 1, sorted: 1 },
    { outputs: 2, name: "top_k" },
  );
  graph.output(values, "similarity");
  graph.output(indices, "neighbour");
  const session = await Session.create(graph, options.session);

  const bankTensor = {
    dtype: "float32" as const,
    shape: [bank.count, dim],
    data: l2NormalizeRows(bank.features, dim),
  };
  const normalized = l2NormalizeRows(queries.features, dim);
  const predicted = new Int32Array(queries.count);
  const neighbourLabels = new Int32Array(k);
  try {
    for (let s = 0; s < queries.count; s += chunkSize) {
      const n = Math.min(chunkSize, queries.count - s);
      const out = await session.run({
        queries: {
          dtype: "float32",
          shape: [n, dim],
          data: normalized.slice(s * dim, (s + n) * dim),
        },
        bank: bankTensor,
      });
      const sims = out.similarity.data as Float32Array;
      const idx = out.neighbour.data as BigInt64Array;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < k; j++) neighbourLabels[j] = bank.labels[Number(idx[i * k + j])];
        predicted[s + i] = knnVote(
          sims.subarray(i * k, (i + 1) * k),
          neighbourLabels,
          classCount,
          options.temperature,
        );
      }
    }
  } finally {
    await session.release();
  }
  return {
    accuracy: accuracy(predicted, queries.labels),
    perClassAccuracy: perClassAccuracy(predicted, queries.labels, queries.classCount),
    k,
    temperature: options.temperature,
    seconds: (performance.now() - start) / 1000,
  };
}

/** Options of {@link knnEvalImages}: the monitor's plus feature extraction. */
export interface KnnImagesOptions extends KnnOptions {
  /** Images per encoder call (default 256). */
  featureBatchSize?: number;
  /** Host-side normalization of [0, 1] images (default none: the encoder normalizes). */
  normalization?: ImageNormalization | null;
  /** Number of classes (default the bank set's). */
  classCount?: number;
}

/** The monitor from images (eval transform): bank = features of `bank`, queries = features of `queries`. */
export async function knnEvalImages(
  encoder: Encoder,
  bank: ImageDataset,
  queries: ImageDataset,
  options: KnnImagesOptions,
): Promise<KnnResult> {
  const extract = {
    batchSize: options.featureBatchSize,
    normalization: options.normalization,
    classCount: options.classCount ?? bank.classes.length,
  };
  return knnEval(
    await extractFeatures(encoder, bank, extract),
    await extractFeatures(encoder, queries, extract),
    options,
  );
}
