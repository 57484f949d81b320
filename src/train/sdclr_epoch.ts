/** SDCLR's per-epoch masks, recomputed from the current dense weights (SPEC §B). */
import type { ExperimentConfig } from "../config/mod.ts";
import type { ContrastiveStep } from "../methods/contrastive.ts";
import { computeMasks, encoderConvWeights, maskFeeds } from "../methods/sdclr/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Rng } from "../util/rng.ts";

const MASK_PREFIX = "mask:";

/**
 * The mask feeds of an epoch. At an epoch's start they are computed from the
 * dense weights and stored in `values` (so checkpoints carry them); a run
 * resumed mid-epoch reuses the stored ones.
 */
export function sdclrEpochMasks(
  config: ExperimentConfig,
  step: ContrastiveStep,
  values: Map<string, HostTensor>,
  epoch: number,
  midEpoch: boolean,
): Record<string, HostTensor> {
  if (config.method.name !== "sdclr") {
    throw new Error(`sdclrEpochMasks: method is ${config.method.name}`);
  }
  const stored = [...values.keys()].filter((k) => k.startsWith(MASK_PREFIX));
  if (!midEpoch || stored.length === 0) {
    const masks = computeMasks(
      encoderConvWeights(step.store, values),
      {
        prunePercent: config.method.prune_percent,
        randomPrunePercent: config.method.random_prune_percent,
      },
      new Rng(config.seed, `prune/${epoch}`),
    );
    const feeds = maskFeeds(step.store, masks);
    for (const k of stored) values.delete(k);
    for (const [name, t] of Object.entries(feeds)) values.set(`${MASK_PREFIX}${name}`, t);
  }
  const feeds: Record<string, HostTensor> = {};
  for (const [k, t] of values) {
    if (k.startsWith(MASK_PREFIX)) feeds[k.slice(MASK_PREFIX.length)] = t;
  }
  return feeds;
}
