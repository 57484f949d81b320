/**
 * SDCLR (SPEC §B) on the host: the pruning masks of the self-competitor,
 * recomputed from the dense weights every epoch and fed to the contrastive
 * step as graph inputs, and the per-epoch diagnostics (mask sparsity, the
 * rarest classes' share of the loss). The step graph itself is
 * `buildContrastiveStep` with `method: { name: "sdclr" }`.
 *
 * ```ts
 * const weights = encoderConvWeights(step.store, runner.values);
 * const masks = computeMasks(weights, { prunePercent: 0.9 }, rng.fork("prune"));
 * await runner.step({ view1, view2, ...maskFeeds(step.store, masks) }, { lr });
 * ```
 * @module
 */
export * from "./masks.ts";
export * from "./diagnostics.ts";
