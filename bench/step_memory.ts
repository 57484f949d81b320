/**
 * Peak memory of one fused training step of a config on CPU, for the notes:
 * builds the step (static at `--batch`), runs `--warmup` + `--steps` steps on
 * random views (masks all ones for SDCLR) and prints ms/step. Measure the
 * peak RSS from outside:
 *
 *   /usr/bin/time -v deno run -A bench/step_memory.ts config/sdclr/simclr_cifar10_split1_D_i.yaml --batch 256
 *   /usr/bin/time -v deno run -A bench/step_memory.ts config/eth/experiment_5.yaml --batch 256
 *
 * ("Maximum resident set size"). Options: --batch N (default: the config's),
 * --threads N (2), --steps N (2), --warmup N (1).
 */
import { parseArgs } from "node:util";
import { initialTrainingState } from "../src/artifacts/mod.ts";
import { loadConfig } from "../src/config/mod.ts";
import { buildContrastiveStep } from "../src/methods/contrastive.ts";
import { contrastiveSpecFromConfig, optimizerFromConfig } from "../src/methods/from_config.ts";
import { createOptimizer } from "../src/optim/mod.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
import { Session } from "../src/runtime/session.ts";
import { StepRunner } from "../src/train/step_runner.ts";
import { Rng } from "../src/util/rng.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    batch: { type: "string" },
    threads: { type: "string", default: "2" },
    steps: { type: "string", default: "2" },
    warmup: { type: "string", default: "1" },
  },
  allowPositionals: true,
});
if (positionals.length !== 1) {
  console.error("usage: deno run -A bench/step_memory.ts CONFIG.yaml [--batch N] [--threads N]");
  Deno.exit(2);
}
const set = values.batch === undefined ? [] : [`train.batch_size=${values.batch}`];
const { config } = await loadConfig(positionals[0], { set });
const spec = contrastiveSpecFromConfig(config);
const plan = optimizerFromConfig(config.optimizer);
const step = buildContrastiveStep(spec, createOptimizer(plan.optimizer), { name: "train_step" });
const session = await Session.create(step.graph, { threads: Number(values.threads) });
const runner = new StepRunner(session, step.layout, initialTrainingState(step, config.seed));

const rng = new Rng(0, "views");
const batch: Record<string, HostTensor> = {};
for (const input of step.graph.inputs) {
  const isView = input.name === step.inputs.view1 || input.name === step.inputs.view2;
  const isMask = step.inputs.masks.includes(input.name);
  if (!isView && !isMask) continue;
  const shape = input.shape as number[];
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (isView) { for (let i = 0; i < data.length; i++) data[i] = rng.uniform(); }
  else data.fill(1);
  batch[input.name] = { dtype: "float32", shape, data };
}
const scalars = { lr: plan.lr, step: 1, mu: 0 };
for (let i = 0; i < Number(values.warmup); i++) await runner.step(batch, scalars);
const times: number[] = [];
let loss = NaN;
for (let i = 0; i < Number(values.steps); i++) {
  const start = performance.now();
  loss = (await runner.step(batch, scalars)).loss;
  times.push(performance.now() - start);
}
await session.release();
const { arch, stem } = spec.encoder;
console.log(
  `${config.experiment}: ${arch} ${stem} stem, ${spec.method.name}, batch ${spec.batchSize} ` +
    `(${2 * spec.batchSize} views), ${values.threads} threads: ` +
    `${times.map((t) => t.toFixed(0)).join(", ")} ms/step, loss ${loss.toFixed(4)}, ` +
    `rss now ${(Deno.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`,
);
