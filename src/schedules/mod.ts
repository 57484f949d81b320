/**
 * Host-side schedules: μ of the ETH weighted loss and the learning rate.
 *
 * @module
 */
export * from "./mu.ts";
export * from "./lr.ts";
