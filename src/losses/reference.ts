/**
 * Plain-TypeScript float64 references of the contrastive losses (SPEC §A "Loss").
 *
 * They are the ground truth the ONNX graph losses are tested against, so they
 * favour clarity and exactness over speed (O((2N)²·D), no allocation tricks).
 *
 * Layout: `z` is a row-major (2N, D) matrix; rows 2k and 2k+1 are a positive
 * pair. Cosine similarity uses z / (‖z‖ + 1e-10), as the ETH code does.
 *
 * Every anchor term is computed in log-sum-exp form relative to the positive:
 *   ℓ_i = log(1 + Σ_k exp(log w_ik + (s_ik − s_ij)/τ)),
 * which equals −log(e^{s_ij/τ} / (e^{s_ij/τ} + Σ_k w_ik e^{s_ik/τ})) and never
 * forms e^{s/τ}, so nothing overflows for any τ > 0 (the loss itself is at
 * most about 2/τ + log(2N)), and log-weights replace weights so that tiny
 * Gaussian weights never underflow to log(0).
 */

/** The ε added to row norms before dividing (ETH `similarities.py`). */
export const NORM_EPS = 1e-10;
/** The ε of the `negatives_constant_total_weight` normalization (ETH loss). */
export const WEIGHT_EPS = 1e-10;
/** Factor applied to weights of similarities outside [b_l, b_u] (strict comparisons). */
export const OUT_OF_BOUNDS_FACTOR = 1e-3;

/** Loss value and its gradient with respect to `z` (same layout as `z`). */
export interface LossWithGrad {
  loss: number;
  grad: Float64Array;
}

/** Options of {@link ntXentReference}. */
export interface NtXentOptions {
  /** τ > 0. */
  temperature: number;
}

/** The two weight normalizations of the ETH `WeightedNTXent` (`weight_normalization`). */
export type WeightNormalization = "negatives_constant_total_weight" | "None";

/** The accepted values of {@link WeightNormalization}, for validation messages. */
export const WEIGHT_NORMALIZATIONS: readonly WeightNormalization[] = [
  "negatives_constant_total_weight",
  "None",
];

/** Options of {@link weightedNtXentReference} (ETH `loss_config` + `weight_config`). */
export interface WeightedNtXentOptions {
  /** τ > 0 (`temperature`). */
  temperature: number;
  /** σ > 0 of the Gaussian weight (`sigma`). */
  sigma: number;
  /** μ, the current value of the mean schedule (`mean`). */
  mean: number;
  /** b_l (`b_l`): weights of similarities strictly below it are multiplied by 1e-3. */
  lowerBound: number;
  /** b_u (`b_u`): weights of similarities strictly above it are multiplied by 1e-3. */
  upperBound: number;
  /** `weight_normalization`. */
  normalization: WeightNormalization;
}

/**
 * NT-Xent (SimCLR) in float64: mean over the 2N anchors of
 * −log(e^{s_ij/τ} / Σ_{k≠i} e^{s_ik/τ}).
 *
 * @param z row-major (rows, dim) projections; rows 2k, 2k+1 are positives.
 * @param rows 2N, even and ≥ 2.
 * @param dim D ≥ 1.
 */
export function ntXentReference(
  z: Float64Array,
  rows: number,
  dim: number,
  opts: NtXentOptions,
): LossWithGrad {
  const where = "ntXentReference";
  checkMatrix(where, z, rows, dim);
  checkPositive(where, "temperature", opts.temperature);
  return contrastiveLoss(z, rows, dim, opts.temperature, () => {});
}

/**
 * ETH `WeightedNTXent` in float64: mean over the 2N anchors of
 * −log(e^{s_ij/τ} / (e^{s_ij/τ} + ρ_i Σ_{k≠i,j} α_ik e^{s_ik/τ})) with
 * α_ik = exp(−(s_ik − μ)²/σ²), ×1e-3 where s_ik < b_l or s_ik > b_u, and
 * ρ_i = (2N − 2 + ε)/(Σ_{k≠i,j} α_ik + ε) for `negatives_constant_total_weight`,
 * ρ_i = 1 for `"None"`. α and ρ are constants for the gradient, as in the
 * original (`torch.no_grad`).
 */
export function weightedNtXentReference(
  z: Float64Array,
  rows: number,
  dim: number,
  opts: WeightedNtXentOptions,
): LossWithGrad {
  const logWeights = weightedNegativeLogWeights(z, rows, dim, opts);
  return contrastiveLoss(z, rows, dim, opts.temperature, (i, j, _sim, out) => {
    for (let k = 0; k < rows; k++) if (k !== i && k !== j) out[k] = logWeights[i * rows + k];
  });
}

/**
 * The constant factors of {@link weightedNtXentReference} in log form: a
 * row-major (rows, rows) matrix whose entry (i, k), k a negative of anchor i,
 * is log(ρ_i α_ik); entries (i, i) and (i, partner) are 0 and unused.
 */
export function weightedNegativeLogWeights(
  z: Float64Array,
  rows: number,
  dim: number,
  opts: WeightedNtXentOptions,
): Float64Array {
  const where = "weightedNtXentReference";
  checkMatrix(where, z, rows, dim);
  checkWeightedOptions(where, opts);
  const { sigma, mean, lowerBound, upperBound, normalization } = opts;
  const invSigma2 = 1 / (sigma * sigma);
  const logOutFactor = Math.log(OUT_OF_BOUNDS_FACTOR);
  const logNegativeCount = Math.log(rows - 2 + WEIGHT_EPS);
  const sim = gram(normalizeRows(z, rows, dim).unit, rows, dim);
  const out = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++) {
    const j = i ^ 1;
    let weightSum = 0;
    for (let k = 0; k < rows; k++) {
      if (k === i || k === j) continue;
      const s = sim[i * rows + k];
      const d = s - mean;
      let logAlpha = -d * d * invSigma2;
      if (s < lowerBound || s > upperBound) logAlpha += logOutFactor;
      out[i * rows + k] = logAlpha;
      weightSum += Math.exp(logAlpha); // may underflow to 0: ε dominates then
    }
    if (normalization === "negatives_constant_total_weight") {
      const logRho = logNegativeCount - Math.log(weightSum + WEIGHT_EPS);
      for (let k = 0; k < rows; k++) if (k !== i && k !== j) out[i * rows + k] += logRho;
    }
  }
  return out;
}

/**
 * NT-Xent with given constant per-negative factors w_ik = exp(logWeights[i·rows + k]):
 * mean over anchors of −log(e^{s_ij/τ} / (e^{s_ij/τ} + Σ_{k≠i,j} w_ik e^{s_ik/τ})).
 * The weights get no gradient. With all log-weights 0 this is {@link ntXentReference};
 * with {@link weightedNegativeLogWeights} it is {@link weightedNtXentReference}.
 */
export function ntXentWithLogWeights(
  z: Float64Array,
  rows: number,
  dim: number,
  temperature: number,
  logWeights: Float64Array,
): LossWithGrad {
  const where = "ntXentWithLogWeights";
  checkMatrix(where, z, rows, dim);
  checkPositive(where, "temperature", temperature);
  if (logWeights.length !== rows * rows) {
    throw new Error(
      `${where}: logWeights has ${logWeights.length} values, expected rows*rows = ${rows * rows}`,
    );
  }
  for (let n = 0; n < logWeights.length; n++) {
    if (Number.isNaN(logWeights[n]) || logWeights[n] === Infinity) {
      throw new Error(
        `${where}: logWeights[${n}] is ${
          logWeights[n]
        }, expected a number < Infinity (-Infinity means weight 0)`,
      );
    }
  }
  return contrastiveLoss(z, rows, dim, temperature, (i, j, _sim, out) => {
    for (let k = 0; k < rows; k++) if (k !== i && k !== j) out[k] = logWeights[i * rows + k];
  });
}

/**
 * Fills `logWeights[k]` (k ≠ i, j) with log of the constant factor of
 * negative k in anchor i's denominator; left untouched means weight 1.
 */
type AnchorLogWeights = (
  anchor: number,
  partner: number,
  sim: Float64Array,
  logWeights: Float64Array,
) => void;

function contrastiveLoss(
  z: Float64Array,
  rows: number,
  dim: number,
  temperature: number,
  anchorLogWeights: AnchorLogWeights,
): LossWithGrad {
  const { unit, norms } = normalizeRows(z, rows, dim);
  const sim = gram(unit, rows, dim);
  // dLoss/ds_ik of each anchor row i (s_ik enters only anchor i's term here).
  const simGrad = new Float64Array(rows * rows);
  const logWeights = new Float64Array(rows);
  const shifted = new Float64Array(rows);
  const invTemperature = 1 / temperature;
  let total = 0;

  for (let i = 0; i < rows; i++) {
    const j = i ^ 1;
    logWeights.fill(0);
    anchorLogWeights(i, j, sim, logWeights);
    const sPositive = sim[i * rows + j];
    // ℓ_i = log(1 + Σ_k exp(a_k)), a_k = log w_ik + (s_ik − s_ij)/τ.
    let peak = 0;
    for (let k = 0; k < rows; k++) {
      if (k === i || k === j) continue;
      shifted[k] = logWeights[k] + (sim[i * rows + k] - sPositive) * invTemperature;
      if (shifted[k] > peak) peak = shifted[k];
    }
    let negatives = 0;
    for (let k = 0; k < rows; k++) {
      if (k === i || k === j) continue;
      negatives += Math.exp(shifted[k] - peak);
    }
    const sum = Math.exp(-peak) + negatives;
    // log1p keeps precision when the negatives are negligible (peak = 0).
    total += peak === 0 ? Math.log1p(negatives) : peak + Math.log(sum);

    let negativeMass = 0;
    for (let k = 0; k < rows; k++) {
      if (k === i || k === j) continue;
      const p = Math.exp(shifted[k] - peak) / sum;
      negativeMass += p;
      simGrad[i * rows + k] = p * invTemperature;
    }
    // d/ds_ij = (p_j − 1)/τ = −(mass of the negatives)/τ, without cancellation.
    simGrad[i * rows + j] = -negativeMass * invTemperature;
  }

  const scale = 1 / rows;
  for (let n = 0; n < simGrad.length; n++) simGrad[n] *= scale;
  const unitGrad = gramBackward(simGrad, unit, rows, dim);
  const grad = normalizeRowsBackward(unitGrad, z, norms, rows, dim);
  return { loss: total * scale, grad };
}

/** Row norms (overflow-safe) and rows divided by (norm + 1e-10). */
function normalizeRows(z: Float64Array, rows: number, dim: number) {
  const unit = new Float64Array(rows * dim);
  const norms = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let largest = 0;
    for (let c = 0; c < dim; c++) largest = Math.max(largest, Math.abs(z[o + c]));
    let sumSquares = 0;
    if (largest > 0) {
      for (let c = 0; c < dim; c++) {
        const x = z[o + c] / largest;
        sumSquares += x * x;
      }
    }
    const norm = largest * Math.sqrt(sumSquares);
    norms[r] = norm;
    const denominator = norm + NORM_EPS;
    for (let c = 0; c < dim; c++) unit[o + c] = z[o + c] / denominator;
  }
  return { unit, norms };
}

function gram(unit: Float64Array, rows: number, dim: number): Float64Array {
  const sim = new Float64Array(rows * rows);
  for (let a = 0; a < rows; a++) {
    for (let b = a; b < rows; b++) {
      let dot = 0;
      for (let c = 0; c < dim; c++) dot += unit[a * dim + c] * unit[b * dim + c];
      sim[a * rows + b] = dot;
      sim[b * rows + a] = dot;
    }
  }
  return sim;
}

/** dL/du_a = Σ_b (G_ab + G_ba) u_b for S = U Uᵀ. */
function gramBackward(
  simGrad: Float64Array,
  unit: Float64Array,
  rows: number,
  dim: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let a = 0; a < rows; a++) {
    for (let b = 0; b < rows; b++) {
      const g = simGrad[a * rows + b] + simGrad[b * rows + a];
      if (g === 0) continue;
      for (let c = 0; c < dim; c++) out[a * dim + c] += g * unit[b * dim + c];
    }
  }
  return out;
}

/**
 * Backward of u = z/(n + ε), n = ‖z‖:
 * dz = (g − ẑ (ẑ·g) n/(n + ε)) / (n + ε) with ẑ = z/n, written with ẑ so
 * that huge rows do not overflow; a zero row gets g/ε (torch's subgradient 0
 * for the norm at 0).
 */
function normalizeRowsBackward(
  unitGrad: Float64Array,
  z: Float64Array,
  norms: Float64Array,
  rows: number,
  dim: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const n = norms[r];
    const denominator = n + NORM_EPS;
    if (n === 0) {
      for (let c = 0; c < dim; c++) out[o + c] = unitGrad[o + c] / denominator;
      continue;
    }
    let projection = 0;
    for (let c = 0; c < dim; c++) projection += (z[o + c] / n) * unitGrad[o + c];
    const radial = projection * (n / denominator);
    for (let c = 0; c < dim; c++) {
      out[o + c] = (unitGrad[o + c] - (z[o + c] / n) * radial) / denominator;
    }
  }
  return out;
}

/**
 * Builds the interleaved (2N, D) matrix [a_0; b_0; a_1; b_1; …] from two
 * (N, D) blocks, so the references above serve SDCLR too.
 *
 * SDCLR's `nt_xent` works on [branch-1 rows; branch-2 rows] with the positive
 * of row i being row i ± N. Every anchor's term depends only on its partner and
 * the set of all other rows, so the mean over anchors is unchanged by this
 * reordering: `ntXentReference(pairInterleaved(z1, z2, n, d), 2n, d, o)` is
 * SDCLR's loss, and {@link unpairInterleaved} maps the gradient back to the
 * branches. (SDCLR normalizes with F.normalize, x/max(‖x‖, 1e-12), rather than
 * x/(‖x‖ + 1e-10); the two differ by about 1e-10/‖x‖ relative.)
 *
 * @param first row-major (n, dim): branch 1 (dense) rows.
 * @param second row-major (n, dim): branch 2 (pruned) rows; row k pairs with row k of `first`.
 */
export function pairInterleaved(
  first: Float64Array,
  second: Float64Array,
  n: number,
  dim: number,
): Float64Array {
  checkCount("pairInterleaved", "n", n, 1);
  checkCount("pairInterleaved", "dim", dim, 1);
  for (const [name, block] of [["first", first], ["second", second]] as const) {
    if (block.length !== n * dim) {
      throw new Error(
        `pairInterleaved: ${name} has ${block.length} values, expected n*dim = ${n}*${dim} = ${
          n * dim
        }`,
      );
    }
  }
  const out = new Float64Array(2 * n * dim);
  for (let k = 0; k < n; k++) {
    out.set(first.subarray(k * dim, (k + 1) * dim), 2 * k * dim);
    out.set(second.subarray(k * dim, (k + 1) * dim), (2 * k + 1) * dim);
  }
  return out;
}

/** Inverse of {@link pairInterleaved}: splits an interleaved (2N, D) matrix (e.g. a gradient) into its two (N, D) blocks. */
export function unpairInterleaved(
  interleaved: Float64Array,
  n: number,
  dim: number,
): { first: Float64Array; second: Float64Array } {
  checkCount("unpairInterleaved", "n", n, 1);
  checkCount("unpairInterleaved", "dim", dim, 1);
  if (interleaved.length !== 2 * n * dim) {
    throw new Error(
      `unpairInterleaved: interleaved has ${interleaved.length} values, expected 2*n*dim = ${
        2 * n * dim
      }`,
    );
  }
  const first = new Float64Array(n * dim);
  const second = new Float64Array(n * dim);
  for (let k = 0; k < n; k++) {
    first.set(interleaved.subarray(2 * k * dim, (2 * k + 1) * dim), k * dim);
    second.set(interleaved.subarray((2 * k + 1) * dim, (2 * k + 2) * dim), k * dim);
  }
  return { first, second };
}

function checkCount(where: string, key: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${where}: ${key} must be an integer ≥ ${min}, got ${value}`);
  }
}

function checkMatrix(where: string, z: Float64Array, rows: number, dim: number): void {
  checkCount(where, "rows", rows, 2);
  if (rows % 2 !== 0) {
    throw new Error(`${where}: rows must be even (2N interleaved pairs), got ${rows}`);
  }
  checkCount(where, "dim", dim, 1);
  if (z.length !== rows * dim) {
    throw new Error(
      `${where}: z has ${z.length} values, expected rows*dim = ${rows}*${dim} = ${rows * dim}`,
    );
  }
  for (let n = 0; n < z.length; n++) {
    if (!Number.isFinite(z[n])) {
      throw new Error(`${where}: z[${n}] is ${z[n]}, expected a finite number`);
    }
  }
}

function checkPositive(where: string, key: string, value: number): void {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new Error(`${where}: ${key} must be a finite number > 0, got ${value}`);
  }
}

function checkWeightedOptions(where: string, opts: WeightedNtXentOptions): void {
  checkPositive(where, "temperature", opts.temperature);
  checkPositive(where, "sigma", opts.sigma);
  if (typeof opts.mean !== "number" || !Number.isFinite(opts.mean)) {
    throw new Error(`${where}: mean must be a finite number, got ${opts.mean}`);
  }
  for (const key of ["lowerBound", "upperBound"] as const) {
    if (typeof opts[key] !== "number" || Number.isNaN(opts[key])) {
      throw new Error(`${where}: ${key} must be a number, got ${opts[key]}`);
    }
  }
  if (!(opts.lowerBound < opts.upperBound)) {
    throw new Error(
      `${where}: lowerBound must be < upperBound, got lowerBound ${opts.lowerBound}, upperBound ${opts.upperBound}`,
    );
  }
  if (!WEIGHT_NORMALIZATIONS.includes(opts.normalization)) {
    throw new Error(
      `${where}: normalization must be one of ${
        WEIGHT_NORMALIZATIONS.map((n) => `"${n}"`).join(", ")
      }, got ${JSON.stringify(opts.normalization)}`,
    );
  }
}
