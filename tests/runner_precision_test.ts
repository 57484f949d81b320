/**
 * `train.precision` through the runner: float16_simulated (float16's rounding
 * with dynamic loss scaling) trains, logs its skipped updates and resumes
 * exactly with the loss scale carried in the checkpoint; float16 on the CPU
 * is refused with the reason before anything is written.
 */
import { assert, assertEquals, assertThrowsMessage } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import { loadRunCheckpoint } from "../src/train/run_state.ts";
import { LOSS_SCALE } from "../src/train/mixed_precision.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

const CONFIG = (dir: string) => `
experiment: precision_check
seed: 5
device: cpu
data: { dataset: cifar10, dir: ${dir}/data, pretrain_split: pretrain.npy }
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: cifar10 }
head: { type: simclr, output_dim: 16 }
loss: { type: ntxent, temperature: 0.2 }
optimizer: { type: adam, lr: 0.001 }
lr_schedule: { type: constant }
train: { epochs: 2, batch_size: 16, checkpoint_every_n_epochs: 1, precision: float16_simulated }
augmentation: { recipe: eth }
evaluation: { evaluate_at_end: false, linear: null }
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`;

async function runFolder(): Promise<string> {
  const dir = await miniCifarRunFolder("precision_");
  await Deno.writeFile(
    `${dir}/data/pretrain.npy`,
    encodeInt64Npy(Array.from({ length: 40 }, (_, i) => 11 * i)),
  );
  await Deno.writeTextFile(`${dir}/config.yaml`, CONFIG(dir));
  return dir;
}

const OPTIONS = { session: { threads: 1 }, progress: false };

Deno.test("train.precision float16_simulated trains, logs skipped updates and resumes exactly", async () => {
  const full = await runFolder();
  const expected = await runExperiment(await loadConfig(`${full}/config.yaml`), {
    ...OPTIONS,
    resume: false,
  });
  assertEquals(expected.status, "finished");
  const losses = expected.average_training_loss_per_epoch;
  assert(losses.every(Number.isFinite), `losses ${losses}`);
  // The first steps overflow at GradScaler's initial scale 65536 and are skipped, as in torch.
  const skipped = expected.epochs.map((e) => e.skippedUpdates);
  assert(skipped.every((n) => typeof n === "number" && n >= 0 && n <= 3), `skipped ${skipped}`);
  const saved = await loadRunCheckpoint(`${full}/checkpoints/precision_check/last.safetensors`);
  const scale = saved.tensors.get(LOSS_SCALE)!.data[0] as number;
  assert(scale > 0 && scale <= 65536, `loss scale ${scale} carried in the checkpoint`);

  const stopped = await runFolder();
  const first = await runExperiment(await loadConfig(`${stopped}/config.yaml`), {
    ...OPTIONS,
    resume: false,
    stopAfterSteps: 4,
  });
  assertEquals(first.status, "interrupted");
  const second = await runExperiment(await loadConfig(`${stopped}/config.yaml`), {
    ...OPTIONS,
    resume: true,
  });
  assertEquals(second.average_training_loss_per_epoch, losses);
  assertEquals(second.epochs.map((e) => e.skippedUpdates), skipped);

  const float32 = await runExperiment(
    await loadConfig(`${full}/config.yaml`, {
      set: ["train.precision=float32", "experiment=precision_f32"],
    }),
    { ...OPTIONS, resume: false },
  );
  assert(
    float32.epochs.every((e) => e.skippedUpdates === undefined),
    "float32 logs no skipped updates",
  );
  for (const dir of [full, stopped]) await Deno.remove(dir, { recursive: true });
});

Deno.test("train.precision float16 on the CPU is refused before anything is written", async () => {
  const dir = await runFolder();
  await assertThrowsMessage(
    async () =>
      await runExperiment(
        await loadConfig(`${dir}/config.yaml`, { set: ["train.precision=float16"] }),
        { ...OPTIONS, resume: false },
      ),
    "train.precision: float16 needs the CUDA device",
    "float16_simulated",
  );
  const written = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert(!written.includes("logs"), `nothing written: ${written}`);
  await Deno.remove(dir, { recursive: true });
});
