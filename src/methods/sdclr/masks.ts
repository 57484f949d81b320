/**
 * SDCLR's pruning masks, computed on the host from the current dense weights
 * (SPEC §B): global unstructured magnitude pruning over every encoder conv
 * weight together, then optional random pruning of the kept weights. The
 * masks are fed to the step graph as inputs named `<conv weight>.mask`, so one
 * exported step serves every epoch.
 */
import type { HostTensor } from "../../runtime/host_tensor.ts";
import type { ParamStore } from "../../nn/mod.ts";
import type { Rng } from "../../util/rng.ts";

/** How much of the encoder to prune (SDCLR's `--prune_percent`, `--random_prune_percent`). */
export interface PruneOptions {
  /** Total fraction of conv weights to prune, in [0, 1). */
  prunePercent: number;
  /** Part of `prunePercent` pruned at random among the weights magnitude pruning keeps; in [0, prunePercent]. */
  randomPrunePercent?: number;
}

/** The magnitude threshold of a set of weights (see {@link magnitudeThreshold}). */
export interface MagnitudeThreshold {
  /** Weights with |w| ≥ threshold are kept. */
  threshold: number;
  /** Position of the threshold in the ascending order of all |w|: min(ceil(p·n), n − 1). */
  index: number;
  /** Number of weights over all layers. */
  count: number;
}

/**
 * Throws an Error naming the config key and value when `prunePercent` is
 * outside [0, 1) or `randomPrunePercent` outside [0, prunePercent].
 */
export function checkPruneOptions(options: PruneOptions): void {
  const { prunePercent } = options;
  const randomPrunePercent = options.randomPrunePercent ?? 0;
  if (typeof prunePercent !== "number" || !(prunePercent >= 0 && prunePercent < 1)) {
    throw new Error(
      `method.prune_percent: ${show(prunePercent)} must be a number in [0, 1)`,
    );
  }
  if (
    typeof randomPrunePercent !== "number" ||
    !(randomPrunePercent >= 0 && randomPrunePercent <= prunePercent)
  ) {
    throw new Error(
      `method.random_prune_percent: ${
        show(randomPrunePercent)
      } must be a number in [0, prune_percent = ${prunePercent}]`,
    );
  }
}

function show(value: unknown): string {
  return typeof value === "number" ? String(value) : JSON.stringify(value);
}

/**
 * The values of the conv weights under `prefix` (default `"encoder."`, so the
 * heads are left out) taken from `values` (parameters by name, e.g. a
 * `StepRunner`'s values), in the store's declaration order.
 */
export function encoderConvWeights(
  store: ParamStore,
  values: ReadonlyMap<string, HostTensor>,
  prefix = "encoder.",
): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  const convs = store.convWeights(prefix);
  if (convs.length === 0) throw new Error(`encoderConvWeights: no conv weights under "${prefix}"`);
  for (const info of convs) {
    const value = values.get(info.name);
    if (!value) throw new Error(`encoderConvWeights: no value for ${info.name}`);
    const size = info.shape.reduce((a, b) => a * b, 1);
    if (!(value.data instanceof Float32Array) || value.data.length !== size) {
      throw new Error(
        `encoderConvWeights: ${info.name} holds ${value.data.length} ${value.dtype} values, ` +
          `expected ${size} float32 for [${info.shape.join(", ")}]`,
      );
    }
    weights.set(info.name, value.data);
  }
  return weights;
}

/** Bits of |w| as uint32: ordered like |w| for every non-NaN float32. */
function absBits(layer: Float32Array): Uint32Array {
  return new Uint32Array(layer.buffer, layer.byteOffset, layer.length);
}

const ABS_MASK = 0x7fffffff;
const INFINITY_BITS = 0x7f800000;

function checkFinite(weights: ReadonlyMap<string, Float32Array>): void {
  for (const [name, layer] of weights) {
    const bits = absBits(layer);
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & ABS_MASK) > INFINITY_BITS) {
        throw new Error(
          `pruning masks: weight ${name}[${i}] is NaN; masks need ordered magnitudes`,
        );
      }
    }
  }
}

/**
 * The `index`-th smallest |w| over all layers, as its float32 bit pattern, by
 * a two-pass radix selection on the bits of |w| (high 16 bits, then low 16
 * bits within the chosen bucket): O(n), no sort, same value as sorting.
 */
function selectAbsBits(weights: ReadonlyMap<string, Float32Array>, index: number): number {
  const high = new Float64Array(1 << 15);
  for (const layer of weights.values()) {
    const bits = absBits(layer);
    for (let i = 0; i < bits.length; i++) high[(bits[i] & ABS_MASK) >>> 16]++;
  }
  let bucket = 0;
  let below = 0;
  while (below + high[bucket] <= index) below += high[bucket++];
  const low = new Float64Array(1 << 16);
  for (const layer of weights.values()) {
    const bits = absBits(layer);
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i] & ABS_MASK;
      if (b >>> 16 === bucket) low[b & 0xffff]++;
    }
  }
  let rest = 0;
  while (below + low[rest] <= index) below += low[rest++];
  return ((bucket << 16) | rest) >>> 0;
}

function bitsToFloat(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0];
}

/**
 * The magnitude threshold of SDCLR's rule over all `weights` together: with n
 * weights and fraction `fraction`, the element min(ceil(fraction·n), n − 1)
 * of the ascending |w| (ceil taken on the double product, as the original's
 * numpy code does).
 */
export function magnitudeThreshold(
  weights: ReadonlyMap<string, Float32Array>,
  fraction: number,
): MagnitudeThreshold {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`magnitudeThreshold: fraction ${fraction} must be in [0, 1)`);
  }
  let count = 0;
  for (const layer of weights.values()) count += layer.length;
  if (count === 0) throw new Error("pruning masks: no conv weights given (an empty set of layers)");
  checkFinite(weights);
  const index = Math.min(Math.ceil(fraction * count), count - 1);
  return { threshold: bitsToFloat(selectAbsBits(weights, index)), index, count };
}

/**
 * SDCLR's masks (1 keep, 0 prune) for the conv weights `weights` (all the
 * encoder's, heads excluded; see {@link encoderConvWeights}), SPEC §B: with n
 * weights, p = prunePercent − randomPrunePercent and r = randomPrunePercent,
 * keep |w| ≥ threshold (the element min(ceil(p·n), n − 1) of the ascending
 * |w|), then drop each kept weight with probability ceil(r·n)/(n − ceil(p·n))
 * (at most 1), drawing from `rng` in layer order. `rng` is needed only when
 * r > 0.
 */
export function computeMasks(
  weights: ReadonlyMap<string, Float32Array>,
  options: PruneOptions,
  rng?: Rng,
): Map<string, Float32Array> {
  checkPruneOptions(options);
  const random = options.randomPrunePercent ?? 0;
  const magnitude = options.prunePercent - random;
  const { threshold, count } = magnitudeThreshold(weights, magnitude);
  const thresholdBits = new Uint32Array(Float32Array.of(threshold).buffer)[0];

  let dropProbability = 0;
  if (random > 0) {
    if (!rng) throw new Error("computeMasks: random_prune_percent > 0 needs a random generator");
    const randomCount = Math.ceil(random * count);
    const kept = count - Math.ceil(magnitude * count);
    dropProbability = kept > 0 ? Math.min(1, randomCount / kept) : 1;
  }

  const masks = new Map<string, Float32Array>();
  for (const [name, layer] of weights) {
    const bits = absBits(layer);
    const mask = new Float32Array(layer.length);
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & ABS_MASK) >= thresholdBits) mask[i] = 1;
    }
    if (dropProbability > 0) {
      for (let i = 0; i < mask.length; i++) {
        if (mask[i] === 1 && rng!.uniform() < dropProbability) mask[i] = 0;
      }
    }
    masks.set(name, mask);
  }
  return masks;
}

/** Fraction of zeros of each mask, keyed by weight name. */
export function maskSparsity(masks: ReadonlyMap<string, Float32Array>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, mask] of masks) out[name] = mask.length ? zeros(mask) / mask.length : 0;
  return out;
}

/** Fraction of zeros over all masks together. */
export function totalSparsity(masks: ReadonlyMap<string, Float32Array>): number {
  let pruned = 0;
  let total = 0;
  for (const mask of masks.values()) {
    pruned += zeros(mask);
    total += mask.length;
  }
  return total ? pruned / total : 0;
}

function zeros(mask: Float32Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) n++;
  return n;
}

/** All-ones masks shaped like `weights` (prune_percent 0; also the dense branch's view). */
export function onesMasks(weights: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const masks = new Map<string, Float32Array>();
  for (const [name, layer] of weights) masks.set(name, new Float32Array(layer.length).fill(1));
  return masks;
}

/**
 * The step graph's mask feeds: `<weight>.mask` → float32 tensor shaped like
 * the weight, for every conv weight under `prefix`; throws naming a weight
 * whose mask is missing or mis-sized.
 */
export function maskFeeds(
  store: ParamStore,
  masks: ReadonlyMap<string, Float32Array>,
  prefix = "encoder.",
): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const info of store.convWeights(prefix)) {
    const mask = masks.get(info.name);
    const size = info.shape.reduce((a, b) => a * b, 1);
    if (!mask || mask.length !== size) {
      throw new Error(
        `maskFeeds: ${info.name} needs a mask of ${size} values, got ${
          mask ? mask.length : "none"
        }`,
      );
    }
    feeds[`${info.name}.mask`] = { dtype: "float32", shape: [...info.shape], data: mask };
  }
  return feeds;
}
