/**
 * A run killed with SIGKILL mid-run and continued with --resume ends with
 * the same log (losses, μ, lr, scores) as an uninterrupted run; a run stopped
 * mid-epoch by SIGINT or SIGTERM, or by SIGTERM during an evaluation, resumes
 * exactly too; logs and checkpoints are never half-written; the random-init
 * evaluation is logged as soon as it exists; a crash in the final evaluation
 * loses no training.
 */
import { assert, assertEquals } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { loadConfig } from "../src/config/mod.ts";
import { runExperiment } from "../src/train/runner.ts";
import type { Evaluator } from "../src/train/evaluate.ts";
import type { HostTensor } from "../src/runtime/host_tensor.ts";
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
    baseline: log.random_init_evaluation?.accuracy,
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

/**
 * Waits until the run's log has at least `epochs` epochs (up to 5 minutes: a guard against a
 * hang, not a time limit; a loaded machine takes long over the random-init evaluation).
 */
async function waitForEpochs(dir: string, epochs: number): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    try {
      if ((await summary(dir)).losses.length >= epochs) return;
    } catch {
      // no log yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${dir}: no log with ${epochs} epochs within 5 minutes`);
}

/**
 * Reads a child's stderr until a line contains `text`; then `all` is the promise of all of it
 * (it keeps reading to the end of the stream).
 */
async function waitForStderr(
  child: Deno.ChildProcess,
  text: string,
): Promise<{ all: Promise<string> }> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the run ended before printing "${text}":\n${seen}`);
    seen += value;
  }
  const all = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) seen += r.value;
    return seen;
  })();
  return { all };
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
  await waitForEpochs(crashed, 1);
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

  // A scheduler's SIGTERM mid-run: a checkpoint of the step reached, exit code 143, then --resume.
  const folders = [reference, crashed];
  const interrupted = await runFolder();
  folders.push(interrupted);
  const running = cli(interrupted);
  await waitForEpochs(interrupted, 1);
  running.kill("SIGTERM");
  const stopped = await running.output();
  assertEquals(stopped.code, 143, new TextDecoder().decode(stopped.stderr));
  const log = JSON.parse(await Deno.readTextFile(`${interrupted}/logs/resume_check.json`));
  assertEquals([log.status, log.interrupted_by], ["interrupted", "SIGTERM"]);
  await finish(cli(interrupted, "--resume"));
  assertEquals(await summary(interrupted), expected, "SIGTERM, then --resume");

  // Ctrl-C (SIGINT) during the random-init evaluation: stopped at once (not after the
  // evaluation), checkpointed, logged, exit code 130; --resume evaluates again and ends as the
  // uninterrupted run.
  const duringEval = await runFolder();
  folders.push(duringEval);
  const evaluating = cli(duringEval);
  const stderr = await waitForStderr(evaluating, "at its random initialization");
  evaluating.kill("SIGINT");
  const status = await evaluating.status;
  const printed = await stderr.all;
  assertEquals(status.code, 130, printed);
  assert(printed.includes("interrupted by SIGINT"), printed);
  const stoppedLog = await summary(duringEval);
  assertEquals([stoppedLog.status, stoppedLog.losses.length], ["interrupted", 0]);
  assertEquals(stoppedLog.baseline, undefined, "the baseline was cut short, not logged");
  await Deno.stat(`${duringEval}/checkpoints/resume_check/last.safetensors`);
  await finish(cli(duringEval, "--resume"));
  assertEquals(await summary(duringEval), expected, "SIGINT in the evaluation, then --resume");
  for (const dir of folders) await Deno.remove(dir, { recursive: true });
});

/**
 * A stand-in for the configured evaluation: the "accuracy" is the mean of the first
 * parameter, so it follows the weights; `fail` makes one epoch's evaluation throw.
 */
function weightEvaluator(
  dir: string,
  seen: { epoch: number; log: { status: string; epochs: number; baseline: boolean } }[],
  fail?: number,
): Evaluator {
  return {
    due: (epoch, last) => last || epoch === 0,
    check: () => Promise.resolve("stand-in evaluation: nothing to check"),
    async run(epoch: number, values: ReadonlyMap<string, HostTensor>) {
      const log = JSON.parse(await Deno.readTextFile(`${dir}/logs/resume_check.json`));
      seen.push({
        epoch,
        log: {
          status: log.status,
          epochs: log.average_training_loss_per_epoch.length,
          baseline: log.random_init_evaluation !== null,
        },
      });
      if (epoch === fail) throw new Error("evaluation failed");
      const first = values.get([...values.keys()].sort()[0])!.data as Float32Array;
      return { epoch, accuracy: first.reduce((a, b) => a + b, 0) / first.length, details: {} };
    },
  };
}

Deno.test("the random-init evaluation is logged at once; a crash in the final evaluation loses no training", async () => {
  const full = await runFolder();
  const crashing = await runFolder();
  try {
    const options = { session: { threads: 1 }, progress: false, resume: false };
    // The random-init baseline needs a log to read in its own evaluation: give it a first one.
    await Deno.mkdir(`${full}/logs`);
    await Deno.writeTextFile(
      `${full}/logs/resume_check.json`,
      JSON.stringify({
        status: "none",
        average_training_loss_per_epoch: [],
        random_init_evaluation: null,
      }),
    );
    const seen: Parameters<typeof weightEvaluator>[1] = [];
    const expected = await runExperiment(await loadConfig(`${full}/config.yaml`), {
      ...options,
      evaluator: weightEvaluator(full, seen),
    });
    assertEquals(expected.status, "finished");
    assertEquals(
      seen.map((s) => [s.epoch, s.log.status, s.log.epochs, s.log.baseline]),
      [[-1, "none", 0, false], [0, "running", 0, true], [2, "running", 2, true]],
      "when epoch 1 is evaluated, the log already holds the random-init evaluation",
    );

    await Deno.mkdir(`${crashing}/logs`);
    await Deno.copyFile(`${full}/logs/resume_check.json`, `${crashing}/logs/resume_check.json`);
    let message = "";
    try {
      await runExperiment(await loadConfig(`${crashing}/config.yaml`), {
        ...options,
        evaluator: weightEvaluator(crashing, [], 2),
      });
    } catch (e) {
      message = (e as Error).message;
    }
    assertEquals(message, "evaluation failed");
    const resumedSeen: Parameters<typeof weightEvaluator>[1] = [];
    const resumed = await runExperiment(await loadConfig(`${crashing}/config.yaml`), {
      ...options,
      resume: true,
      evaluator: weightEvaluator(crashing, resumedSeen),
    });
    assertEquals(resumedSeen.map((s) => s.epoch), [2], "only the final evaluation ran again");
    assertEquals(resumed.status, "finished");
    assertEquals(resumed.average_training_loss_per_epoch, expected.average_training_loss_per_epoch);
    assertEquals(resumed.model_scores, expected.model_scores);
    assertEquals(resumed.random_init_evaluation, expected.random_init_evaluation);
  } finally {
    await Deno.remove(full, { recursive: true });
    await Deno.remove(crashing, { recursive: true });
  }
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

Deno.test("steps grouped K per run, stopped mid-group, resumed with another K: same log as single steps", async () => {
  const single = await runFolder();
  const grouped = await runFolder();
  const options = { session: { threads: 1 }, progress: false };
  const config = (dir: string, k: number) =>
    loadConfig(`${dir}/config.yaml`, { set: [`train.steps_per_run=${k}`] });
  const expected = await runExperiment(await config(single, 1), { ...options, resume: false });
  // 3 steps per epoch (16, 16 and the partial 8): with K = 2 the 4th step is the first of a group.
  const first = await runExperiment(await config(grouped, 2), {
    ...options,
    resume: false,
    stopAfterSteps: 4,
  });
  assertEquals(first.status, "interrupted");
  assertEquals(first.average_training_loss_per_epoch.length, 1);
  const second = await runExperiment(await config(grouped, 3), { ...options, resume: true });
  assertEquals(second.status, "finished");
  assertEquals(second.average_training_loss_per_epoch, expected.average_training_loss_per_epoch);
  assertEquals(second.mu_per_epoch, expected.mu_per_epoch);
  assertEquals(second.lr_per_epoch, expected.lr_per_epoch);
  assertEquals(second.model_scores, expected.model_scores);
  // The per-anchor losses of every step reach the rare-class diagnostics unchanged.
  assertEquals(
    second.epochs.map((e) => e.diagnostics),
    expected.epochs.map((e) => e.diagnostics),
  );
  assert(expected.epochs.every((e) => e.diagnostics !== undefined), "rare-class share logged");
  await Deno.remove(single, { recursive: true });
  await Deno.remove(grouped, { recursive: true });
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
