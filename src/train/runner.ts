/**
 * The experiment runner: pretrain epoch by epoch through the fused ONNX step,
 * evaluate at the configured epochs, checkpoint, log; resume after a crash.
 *
 * Every random number of a step is a pure function of (seed, epoch, step):
 * data order per epoch, augmentation per step, μ from a checkpointed stream.
 * So a resumed run continues exactly where the checkpoint left it.
 */
import type { LoadedConfig } from "../config/mod.ts";
import { Augmenter, recipeFromConfig } from "../augment/mod.ts";
import { EpochLoader } from "../data/loader.ts";
import { buildContrastiveStep, type ContrastiveStep } from "../methods/contrastive.ts";
import { contrastiveSpecFromConfig, optimizerFromConfig } from "../methods/from_config.ts";
import { initialTrainingState } from "../artifacts/mod.ts";
import { createOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import {
  iterationsPerEpoch,
  lrScheduleFromConfig,
  muRng,
  muScheduleFromConfig,
} from "../schedules/from_config.ts";
import { lrAt } from "../schedules/lr.ts";
import { exists } from "../data/files.ts";
import { ProgressBar } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import { type Evaluator, evaluatorFor } from "./evaluate.ts";
import { describeProvenance, experimentProvenance, loadExperimentData } from "./experiment_data.ts";
import { buildExperimentLog, type ExperimentLog } from "./log.ts";
import { writeRunOutputs } from "../report/run_outputs.ts";
import { configHash, makeRunFolders, runPaths } from "./paths.ts";
import { loadRunCheckpoint, type RunProgress, saveRunCheckpoint } from "./run_state.ts";
import { sdclrEpochMasks } from "./sdclr_epoch.ts";
import { epochDiagnostics, formatDiagnostics, RareClassLossShare } from "../methods/sdclr/mod.ts";
import { classCounts } from "../data/dataset.ts";
import { StepRunner } from "./step_runner.ts";

/** Options of {@link runExperiment}. */
export interface RunOptions {
  resume: boolean;
  session: SessionOptions;
  /** Stop (as Ctrl-C would) after this many optimizer steps in this session; tests simulate crashes with it. */
  stopAfterSteps?: number;
  /** Replaces the configured evaluation protocols (tests). */
  evaluator?: Evaluator;
  /** Draw progress bars (default true). */
  progress?: boolean;
}

function freshProgress(hash: string, muState: RunProgress["mu"]): RunProgress {
  return {
    epoch: 0,
    stepInEpoch: 0,
    epochLossSum: 0,
    epochSteps: 0,
    epochClassLoss: null,
    epochClassAnchors: null,
    epochMu: null,
    epochLr: 0,
    globalStep: 0,
    history: [],
    evaluations: [],
    randomInitEvaluation: null,
    mu: muState,
    configHash: hash,
    elapsedSeconds: 0,
  };
}

/** Runs (or, with `resume`, continues) the experiment of a loaded config; returns its final log. */
export async function runExperiment(
  loaded: LoadedConfig,
  options: RunOptions,
): Promise<ExperimentLog> {
  const config = loaded.config;
  const paths = runPaths(config);
  makeRunFolders(paths);
  const hash = configHash(loaded);
  const data = await loadExperimentData(config);
  const provenance = await experimentProvenance(config, data);
  console.error(describeProvenance(provenance));
  const batch = config.train.batch_size;
  const loader = new EpochLoader({
    dataset: data.pretrain,
    batchSize: batch,
    seed: config.seed,
    dropLast: config.train.drop_last,
  });
  const iterations = iterationsPerEpoch(data.pretrain.count, batch, config.train.drop_last);
  const lrSchedule = lrScheduleFromConfig(config, iterations);
  const mu = muScheduleFromConfig(config, muRng(config.seed));
  const spec = contrastiveSpecFromConfig(config);
  const optimizer = createOptimizer(optimizerFromConfig(config.optimizer).optimizer);

  // Parameters, buffers and optimizer state, shared by the step of every batch size.
  const values = new Map<string, HostTensor>();
  let progress: RunProgress;
  const fullStep = buildContrastiveStep({ ...spec, batchSize: batch }, optimizer);
  if (options.resume && await exists(paths.checkpoint)) {
    const saved = await loadRunCheckpoint(paths.checkpoint);
    if (saved.progress.configHash !== hash) {
      throw new Error(
        `--resume: ${paths.checkpoint} was written for a different config; remove it or run without --resume`,
      );
    }
    for (const [name, value] of saved.tensors) values.set(name, value);
    progress = saved.progress;
    if (mu && progress.mu) mu.restore(progress.mu);
    console.error(
      `resuming ${config.experiment}: epoch ${progress.epoch + 1}, step ${progress.stepInEpoch}`,
    );
  } else {
    for (const [name, value] of initialTrainingState(fullStep, config.seed)) {
      values.set(name, value);
    }
    progress = freshProgress(hash, mu?.state() ?? null);
  }

  // One static-shaped step graph per batch size: the full batch and, without drop_last, the remainder.
  const steps = new Map<number, { step: ContrastiveStep; runner: StepRunner }>();
  const stepFor = async (size: number) => {
    let entry = steps.get(size);
    if (!entry) {
      const step = size === batch
        ? fullStep
        : buildContrastiveStep({ ...spec, batchSize: size }, optimizer);
      const session = await Session.create(step.graph, options.session);
      entry = { step, runner: new StepRunner(session, step.layout, values) };
      steps.set(size, entry);
    }
    return entry;
  };
  await stepFor(batch);

  const augmenter = await Augmenter.create(recipeFromConfig(config.augmentation), {
    ...options.session,
    height: data.pretrain.height,
    width: data.pretrain.width,
  });
  const evaluator = options.evaluator ?? evaluatorFor(config, data, options.session);
  // Share of the loss carried by the rarest classes' samples (labels are used for logging only);
  // on balanced data no class is rarer than another, so there is nothing to follow.
  const counts = classCounts(data.pretrain.labels, data.classes);
  const rare = counts.some((n) => n !== counts[0])
    ? new RareClassLossShare(counts, rareClassCount(config, data.classes))
    : null;
  const sessionStart = performance.now();
  const earlierSessions = progress.elapsedSeconds;
  const elapsed = () => earlierSessions + (performance.now() - sessionStart) / 1000;
  const log = (status: string) =>
    buildExperimentLog(loaded, progress, status, elapsed(), options.session, provenance);
  let stopRequested = false;
  const onSignal = () => (stopRequested = true);
  Deno.addSignalListener("SIGINT", onSignal);
  let stepsThisSession = 0;

  try {
    if (config.evaluation.random_init_baseline && !progress.randomInitEvaluation) {
      if (progress.globalStep > 0) {
        console.error(
          `${paths.checkpoint} has no random-init evaluation and its weights are trained; ` +
            "the run goes on without that baseline",
        );
      } else {
        console.error("evaluating the encoder at its random initialization (baseline)");
        progress.randomInitEvaluation = await evaluator.run(-1, values);
      }
    }
    while (progress.epoch < config.train.epochs) {
      const epoch = progress.epoch;
      const epochStart = performance.now();
      let views = 0;
      const masks = spec.method.name === "sdclr"
        ? sdclrEpochMasks(config, fullStep, values, epoch, progress.stepInEpoch > 0)
        : {};
      const bar = options.progress === false
        ? null
        : new ProgressBar(`epoch ${epoch + 1}/${config.train.epochs}`, iterations);
      bar?.tick(progress.stepInEpoch);
      rare?.reset();
      if (rare && progress.epochClassLoss && progress.epochClassAnchors) {
        rare.restore(progress.epochClassLoss, progress.epochClassAnchors);
      }

      for await (const b of loader.epoch(epoch, progress.stepInEpoch)) {
        const size = b.indices.length;
        const { step, runner } = await stepFor(size);
        const augmented = await augmenter.augment(
          b.images,
          size,
          new Rng(config.seed, `augment/${epoch}/${progress.stepInEpoch}`),
        );
        const muValue = mu ? mu.value() : null;
        const lr = lrAt(lrSchedule, progress.globalStep);
        if (progress.stepInEpoch === 0) {
          progress.epochMu = muValue;
          progress.epochLr = lr;
        }
        const result = await runner.step(
          {
            [step.inputs.view1]: augmented.views[0],
            [step.inputs.view2]: augmented.views[1],
            ...masks,
          },
          { lr, step: progress.globalStep + 1, mu: muValue ?? 0 },
        );
        if (!Number.isFinite(result.loss)) {
          throw new Error(
            `epoch ${
              epoch + 1
            }, step ${progress.stepInEpoch}: the loss is ${result.loss}; stopped (the last checkpoint is kept)`,
          );
        }
        rare?.add(result.extras.per_anchor_loss.data as Float32Array, b.labels);
        progress.epochLossSum += result.loss;
        progress.epochSteps++;
        progress.stepInEpoch++;
        progress.globalStep++;
        stepsThisSession++;
        views += 2 * size;
        bar?.tick(1, {
          loss: progress.epochLossSum / progress.epochSteps,
          ...(muValue !== null ? { mu: muValue } : {}),
          lr,
          "views/s": Math.round(views / ((performance.now() - epochStart) / 1000)),
        });
        if (stopRequested || stepsThisSession === options.stopAfterSteps) {
          progress.mu = mu?.state() ?? null;
          const sums = rare?.result();
          progress.epochClassLoss = sums?.classLoss ?? null;
          progress.epochClassAnchors = sums?.classAnchors ?? null;
          progress.elapsedSeconds = elapsed();
          await saveRunCheckpoint(paths.checkpoint, values, progress);
          const interrupted = log("interrupted");
          await writeRunOutputs(paths, interrupted);
          bar?.finish({ status: "interrupted" });
          console.error(
            `interrupted: checkpoint saved to ${paths.checkpoint}; continue with --resume`,
          );
          return interrupted;
        }
      }

      const seconds = (performance.now() - epochStart) / 1000;
      const loss = progress.epochLossSum / progress.epochSteps;
      bar?.finish({ loss });
      const diagnostics = spec.method.name === "sdclr"
        ? epochDiagnostics(maskArrays(masks), rare ?? undefined)
        : rare
        ? { rareClasses: rare.result() }
        : null;
      if (diagnostics && "sparsity" in diagnostics) {
        console.error(`epoch ${epoch + 1}: ${formatDiagnostics(diagnostics)}`);
      }
      progress.history.push({
        epoch,
        loss,
        mu: progress.epochMu,
        lr: progress.epochLr,
        viewsPerSecond: views / seconds,
        seconds,
        ...(diagnostics ? { diagnostics: diagnostics as unknown as Record<string, unknown> } : {}),
      });
      progress.epochClassLoss = null;
      progress.epochClassAnchors = null;
      mu?.epochEnd();
      progress.mu = mu?.state() ?? null;
      progress.epoch = epoch + 1;
      progress.stepInEpoch = 0;
      progress.epochLossSum = 0;
      progress.epochSteps = 0;

      const last = progress.epoch === config.train.epochs;
      if (evaluator.due(epoch, last, progress.evaluations.length)) {
        progress.evaluations.push(await evaluator.run(epoch, values));
      }
      const every = config.train.checkpoint_every_n_epochs;
      progress.elapsedSeconds = elapsed();
      if (last || (every !== null && progress.epoch % every === 0)) {
        await saveRunCheckpoint(paths.checkpoint, values, progress);
      }
      await writeRunOutputs(paths, log(last ? "finished" : "running"));
    }
    return log("finished");
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    await augmenter.release();
    for (const { runner } of steps.values()) await runner.session.release();
  }
}

/** How many of the rarest classes the loss-share diagnostic follows: the "few" group, else 30 %. */
function rareClassCount(config: LoadedConfig["config"], classes: number): number {
  const groups = config.evaluation.groups;
  if (groups?.by === "rank") return groups.sizes[groups.sizes.length - 1];
  return Math.max(1, Math.round(0.3 * classes));
}

/** Mask feeds (`<weight>.mask`) as plain arrays keyed by weight name, for the sparsity report. */
function maskArrays(feeds: Record<string, HostTensor>): Map<string, Float32Array> {
  return new Map(
    Object.entries(feeds).map(([name, t]) => [name.replace(/\.mask$/, ""), t.data as Float32Array]),
  );
}
