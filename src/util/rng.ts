/**
 * Seeded, counter-based random numbers (SplitMix64 over a 64-bit counter).
 *
 * Every random number of a run (data order, augmentation parameters, μ draws,
 * initialisation) comes from an {@link Rng}. Its whole state is `(seed, stream,
 * counter)`, so a resumed run restores the counter and continues exactly.
 */

const MASK64 = (1n << 64n) - 1n;
const TWO_POW_32 = 4294967296;

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** A 32-bit integer hash with low bias (Wellons' lowbias32). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function hashString(text: string): bigint {
  // FNV-1a 64-bit: stable stream ids from names.
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h = ((h ^ BigInt(byte)) * 0x100000001b3n) & MASK64;
  }
  return h;
}

/** Serializable state of an {@link Rng}. */
export interface RngState {
  seed: number;
  stream: string;
  counter: number;
}

/** A reproducible generator: value k of stream s under seed x is a pure function of (x, s, k). */
export class Rng {
  readonly seed: number;
  readonly stream: string;
  /** Number of 64-bit words consumed so far. */
  counter: number;
  readonly #key: Uint32Array;

  constructor(seed: number, stream = "main", counter = 0) {
    if (!Number.isInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    this.seed = seed;
    this.stream = stream;
    this.counter = counter;
    const k1 = mix64((BigInt.asUintN(64, BigInt(seed)) ^ hashString(stream)) & MASK64);
    const k2 = mix64(k1 ^ 0x9e3779b97f4a7c15n);
    this.#key = Uint32Array.of(
      Number(k1 & 0xffffffffn),
      Number(k1 >> 32n),
      Number(k2 & 0xffffffffn),
      Number(k2 >> 32n),
    );
  }

  /** Restores a generator from {@link Rng.state}. */
  static fromState(state: RngState): Rng {
    return new Rng(state.seed, state.stream, state.counter);
  }

  /** The state to save in a checkpoint. */
  state(): RngState {
    return { seed: this.seed, stream: this.stream, counter: this.counter };
  }

  /** An independent generator for a named sub-stream (e.g. "augment", "mu", "init"). */
  fork(name: string): Rng {
    return new Rng(this.seed, `${this.stream}/${name}`);
  }

  // Word k is a keyed hash of the counter (32-bit arithmetic only: fast in JS).
  #high = 0;
  #low = 0;
  #next(): void {
    const k = this.#key;
    const index = ++this.counter;
    const lo = index >>> 0;
    const hi = Math.floor(index / TWO_POW_32) >>> 0;
    const a = mix32(mix32(lo ^ k[0]) ^ hi ^ k[1]);
    this.#high = mix32(a ^ k[2]);
    this.#low = mix32(this.#high ^ lo ^ k[3]);
  }

  /** The next 64 random bits. */
  nextU64(): bigint {
    this.#next();
    return (BigInt(this.#high) << 32n) | BigInt(this.#low);
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    this.#next();
    return ((this.#high >>> 5) * 67108864 + (this.#low >>> 6)) / 9007199254740992;
  }

  /** Fills `out` with uniform values in [low, high). */
  fillUniform(out: Float32Array | Float64Array, low: number, high: number): void {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.uniform();
  }

  /** Fills `out` with normal values of the given mean and standard deviation. */
  fillNormal(out: Float32Array | Float64Array, mean: number, std: number): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
  }

  /** Uniform double in [low, high). */
  uniformIn(low: number, high: number): number {
    return low + (high - low) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new Error(`Rng.int: n must be positive, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal draw (Box–Muller; consumes two words). */
  normal(): number {
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Bernoulli draw with probability p. */
  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }
}
