/**
 * A run killed with SIGKILL mid-run and continued with --resume ends with
 * the same log (losses, μ, lr, scores) as an uninterrupted run; a run stopped
 * mid-epoch (as Ctrl-C does) resumes exactly too; logs and checkpoints are
 * never half-written.
 */
import { assert, assertEquals } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

const CONFIG = (dir: string) => `
experiment: resume_check
seed: 3
device: cpu
data: { dataset: cifar10, dir: ${dir}/data, pretrain_split: pretrain.npy }
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: cifar10 }
head: { type: simclr, output_dim: 16 }
method: { name: simclr }
loss:
  type: weighted_ntxent
  temperature: 0.2
  sigma: 0.5
  mean: { type: random_every_iter, begin: -1, end: 1 }
optimizer: { type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0001 }
lr_schedule: { type: warmup_cosine, warmup_epochs: 1, final_lr: 0.000001 }
train: { epochs: 3, batch_size: 16, drop_last: false, checkpoint_every_n_epochs: 1 }
augmentation: { recipe: eth }
evaluation:
  testing_every_n_epochs: 2
  random_init_baseline: true
  knn: { k: 10, temperature: 0.1 }
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`;

/** A run folder: the bundled CIFAR files linked, a 40-image pretraining split, the config. */
async function runFolder(): Promise<string> {
  const dir = await miniCifarRunFolder("resume_");
  await Deno.writeFile(
    `${dir}/data/pretrain.npy`,
    encodeInt64Npy(Array.from({ length: 40 }, (_, i) => 7 * i)),
  );
  await Deno.writeTextFile(`${dir}/config.yaml`, CONFIG(dir));
  return dir;
}

interface LogSummary {
  losses: number[];
  mu: (number | null)[];
  lr: number[];
  scores: number[];
  baseline: number;
  status: string;
  /** What the log says the training data is (provenance). */
  data: string | null;
}

async function summary(dir: string): Promise<LogSummary> {
  const log = JSON.parse(await Deno.readTextFile(`${dir}/logs/resume_check.json`));
  return {
    losses: log.average_training_loss_per_epoch,
    mu: log.mu_per_epoch,
    lr: log.lr_per_epoch,
    scores: log.model_scores,
    baseline: log.random_init_evaluation.accuracy,
    status: log.status,
    data: log.data?.known ?? null,
  };
}

function cli(dir: string, ...extra: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "mod.ts", "run", `${dir}/config.yaml`, "--threads", "1", ...extra],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Waits (up to 30 s) until a file exists. */
async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`${path} did not appear within 30 s`);
}

async function finish(child: Deno.ChildProcess): Promise<void> {
  const out = await child.output();
  assert(out.success, `run failed: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("kill -9 mid-run, then --resume: the final log equals an uninterrupted run's", async () => {
  const reference = await runFolder();
  await finish(cli(reference));
  const expected = await summary(reference);
  assertEquals(expected.status, "finished");
  assertEquals(expected.losses.length, 3);
  assertEquals(expected.scores.length, 2, "evaluated after epoch 2 and after the last epoch");
  assert(expected.data?.startsWith("data/cifar10-mini"), `provenance: ${expected.data}`);

  const crashed = await runFolder();
  const child = cli(crashed);
  // The first log comes right after the first checkpoint (end of epoch 1).
  await waitFor(`${crashed}/logs/resume_check.json`);
  child.kill("SIGKILL");
  await child.output();
  // Whatever is visible after the crash is whole: the log parses, the checkpoint loads.
  const partial = await summary(crashed);
  assert(
    partial.losses.length >= 1 && partial.losses.length < 3,
    `killed after ${partial.losses.length} epochs`,
  );
  const leftovers = [...Deno.readDirSync(`${crashed}/checkpoints/resume_check`)].map((e) => e.name);
  assert(leftovers.includes("last.safetensors"), leftovers.join(", "));

  await finish(cli(crashed, "--resume"));
  const resumed = await summary(crashed);
  assertEquals(resumed, expected);

  // Ctrl-C (SIGINT) mid-run: a checkpoint of the step reached, exit code 130, then --resume.
  const interrupted = await runFolder();
  const running = cli(interrupted);
  await waitFor(`${interrupted}/logs/resume_check.json`);
  running.kill("SIGINT");
  const stopped = await running.output();
  assertEquals(stopped.code, 130, new TextDecoder().decode(stopped.stderr));
  assertEquals((await summary(interrupted)).status, "interrupted");
  await finish(cli(interrupted, "--resume"));
  assertEquals(await summary(interrupted), expected);
  for (const dir of [reference, crashed, interrupted]) await Deno.remove(dir, { recursive: true });
});

Deno.test("a run stopped mid-epoch (as Ctrl-C does) resumes to the same result", async () => {
  const full = await runFolder();
  const stopped = await runFolder();
  const options = { session: { threads: 1 }, progress: false };
  const expected = await runExperiment(await loadConfig(`${full}/config.yaml`), {
    ...options,
    resume: false,
  });

  const first = await runExperiment(await loadConfig(`${stopped}/config.yaml`), {
    ...options,
    resume: false,
    stopAfterSteps: 4,
  });
  assertEquals(first.status, "interrupted");
  assertEquals(
    first.average_training_loss_per_epoch.length,
    1,
    "3 steps per epoch: stopped in epoch 2",
  );
  const second = await runExperiment(await loadConfig(`${stopped}/config.yaml`), {
    ...options,
    resume: true,
  });
  assertEquals(second.status, "finished");
  assertEquals(second.average_training_loss_per_epoch, expected.average_training_loss_per_epoch);
  assertEquals(second.mu_per_epoch, expected.mu_per_epoch);
  assertEquals(second.lr_per_epoch, expected.lr_per_epoch);
  assertEquals(second.model_scores, expected.model_scores);
  assertEquals(second.random_init_evaluation?.accuracy, expected.random_init_evaluation?.accuracy);
  await Deno.remove(full, { recursive: true });
  await Deno.remove(stopped, { recursive: true });
});

Deno.test("--resume refuses a checkpoint written for another config", async () => {
  const dir = await runFolder();
  const options = { session: { threads: 1 }, progress: false };
  await runExperiment(await loadConfig(`${dir}/config.yaml`), {
    ...options,
    resume: false,
    stopAfterSteps: 1,
  });
  const changed = await loadConfig(`${dir}/config.yaml`, { set: ["loss.temperature=0.3"] });
  let message = "";
  try {
    await runExperiment(changed, { ...options, resume: true });
  } catch (e) {
    message = (e as Error).message;
  }
  assert(message.includes("different config"), message);
  await Deno.remove(dir, { recursive: true });
});
