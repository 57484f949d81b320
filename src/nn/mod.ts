/**
 * Layers, encoders and heads as graph builders. Parameters and BN running
 * statistics are graph inputs declared in a {@link ParamStore}; train-mode
 * builds return the new running statistics to expose as graph outputs.
 *
 * ```ts
 * const store = new ParamStore(graph, { bnBranches: 2 });
 * const dense = encoder(store, x1, { arch: "resnet18", stem: "cifar" }, { train: true, branch: 0 });
 * const masks = declareMasks(store, "encoder.");
 * const pruned = encoder(store, x2, { arch: "resnet18", stem: "cifar" }, { train: true, branch: 1, masks });
 * exposeBufferUpdates(graph, [...dense.updates, ...pruned.updates]);
 * const values = initParams(store.entries(), new Rng(seed, "init"));
 * ```
 * @module
 */
export * from "./params.ts";
export * from "./module.ts";
export * from "./init.ts";
export * from "./layers.ts";
export * from "./batchnorm.ts";
export * from "./resnet.ts";
export * from "./heads.ts";
export * from "./conv_gemm.ts";
