/**
 * Methods on the shared contrastive step: SimCLR and SDCLR (pruned branch,
 * dual BN) with NT-Xent or the ETH weighted loss, and the config mapping.
 * @module
 */
export * from "./contrastive.ts";
export * from "./from_config.ts";
export * as sdclr from "./sdclr/mod.ts";
