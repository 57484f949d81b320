/**
 * Contrastive losses: float64 plain-TypeScript references (NT-Xent, ETH
 * WeightedNTXent, SDCLR pairing helpers).
 *
 * @module
 */
export * from "./reference.ts";
export * from "./graph.ts";
