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
import type { ContrastiveStep } from "../methods/contrastive.ts";
import { contrastiveSpecFromConfig, optimizerFromConfig } from "../methods/from_config.ts";
import { initialTrainingState } from "../artifacts/mod.ts";
import { createOptimizer } from "../optim/mod.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { SessionOptions } from "../runtime/session.ts";
import {
  iterationsPerEpoch,
  lrScheduleFromConfig,
  MIN_CONTRASTIVE_BATCH,
  muRng,
  muScheduleFromConfig,
} from "../schedules/from_config.ts";
import { lrAt } from "../schedules/lr.ts";
import { exists } from "../data/files.ts";
import { ProgressBar } from "../util/progress.ts";
import { Rng } from "../util/rng.ts";
import { type Evaluator, evaluatorFor } from "./evaluate.ts";
import {
  dataCounts,
  describeProvenance,
  experimentProvenance,
  loadExperimentData,
} from "./experiment_data.ts";
import { buildExperimentLog, type ExperimentLog } from "./log.ts";
import { writeRunOutputs } from "../report/run_outputs.ts";
import { configHash, makeRunFolders, runPaths } from "./paths.ts";
import { loadRunCheckpoint, type RunProgress, saveRunCheckpoint } from "./run_state.ts";
import { sdclrEpochMasks } from "./sdclr_epoch.ts";
import { epochDiagnostics, formatDiagnostics, RareClassLossShare } from "../methods/sdclr/mod.ts";
import { classCounts } from "../data/dataset.ts";
import { StepEngine, type StepInput } from "./step_engine.ts";
import { buildStepAtPrecision, checkPrecision } from "./precision.ts";
import { StopRequest } from "./stop_signals.ts";
import { checkEvaluation, lastBatchSize, runNotes } from "./preflight.ts";

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
  const precision = config.train.precision;
  checkPrecision(precision, options.session.device ?? "cpu");
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
    minLastBatch: MIN_CONTRASTIVE_BATCH,
  });
  const notes = runNotes(config, data.pretrain);
  for (const note of notes) console.error(note);
  const iterations = iterationsPerEpoch(data.pretrain.count, batch, config.train.drop_last);
  const lrSchedule = lrScheduleFromConfig(config, iterations);
  const mu = muScheduleFromConfig(config, muRng(config.seed));
  const spec = contrastiveSpecFromConfig(config);
  const optimizer = createOptimizer(optimizerFromConfig(config.optimizer).optimizer);

  // Parameters, buffers and optimizer state, shared by the step of every batch size.
  const values = new Map<string, HostTensor>();
  let progress: RunProgress;
  const { loss_scale: lossScale } = config.train;
  const buildStep = (size: number) =>
    buildStepAtPrecision({ ...spec, batchSize: size }, optimizer, { precision, lossScale });
  const full = buildStep(batch);
  const fullStep = full.step;
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
    for (const [name, value] of initialTrainingState(fullStep, config.seed, full.initialValues)) {
      values.set(name, value);
    }
    progress = freshProgress(hash, mu?.state() ?? null);
  }

  // One static-shaped step graph per batch size: the full batch, run up to K steps per session
  // run (train.steps_per_run), and, without drop_last, the remainder, run on its own.
  const stepsPerRun = config.train.steps_per_run;
  const steps = new Map<number, { step: ContrastiveStep; engine: StepEngine }>();
  const stepFor = async (size: number) => {
    let entry = steps.get(size);
    if (!entry) {
      const step = size === batch ? fullStep : buildStep(size).step;
      const engine = await StepEngine.create(step, values, {
        session: options.session,
        stepsPerRun: size === batch ? stepsPerRun : 1,
        shared: step.inputs.masks,
      });
      entry = { step, engine };
      steps.set(size, entry);
    }
    return entry;
  };
  await stepFor(batch);
  const rest = lastBatchSize(data.pretrain.count, batch, config.train.drop_last);
  if (rest !== null) await stepFor(rest);

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
    buildExperimentLog(loaded, progress, status, elapsed(), options.session, {
      notes,
      dataCounts: dataCounts(data),
      data: provenance,
    });
  // SIGINT and SIGTERM stop the run after the steps in flight, or at once during an
  // evaluation (which is then run again on --resume): checkpoint, log "interrupted".
  const stop = new StopRequest(() => {
    if (stepsPerRun > 1) {
      console.error(
        `\nstopping after the steps in flight (up to ${stepsPerRun} per run: train.steps_per_run)`,
      );
    }
  });
  const interrupt = async (): Promise<ExperimentLog> => {
    progress.elapsedSeconds = elapsed();
    await saveRunCheckpoint(paths.checkpoint, values, progress);
    const interrupted: ExperimentLog = {
      ...log("interrupted"),
      interrupted_by: stop.signal ?? "stop_after_steps",
    };
    await writeRunOutputs(paths, interrupted);
    console.error(
      `interrupted${
        stop.signal ? ` by ${stop.signal}` : ""
      }: checkpoint saved to ${paths.checkpoint}; continue with --resume`,
    );
    return interrupted;
  };
  /** Runs the evaluation after `epoch` (-1: random init); false when a stop signal cut it short. */
  const evaluate = async (epoch: number): Promise<boolean> => {
    const record = await stop.unlessStopped(evaluator.run(epoch, values));
    if (record === null) return false;
    if (epoch < 0) progress.randomInitEvaluation = record;
    else progress.evaluations.push(record);
    return true;
  };
  /** Whether the epoch just finished (`progress.epoch` - 1) is due an evaluation it has not had. */
  const evaluationPending = () => {
    const epoch = progress.epoch - 1;
    return epoch >= 0 && progress.stepInEpoch === 0 &&
      progress.evaluations.at(-1)?.epoch !== epoch &&
      evaluator.due(epoch, progress.epoch === config.train.epochs, progress.evaluations.length);
  };
  let stepsThisSession = 0;

  try {
    await checkEvaluation(config, progress, evaluator, values);
    if (config.evaluation.random_init_baseline && !progress.randomInitEvaluation) {
      if (progress.globalStep > 0) {
        console.error(
          `${paths.checkpoint} has no random-init evaluation and its weights are trained; ` +
            "the run goes on without that baseline",
        );
      } else {
        console.error("evaluating the encoder at its random initialization (baseline)");
        if (!await evaluate(-1)) return await interrupt();
        // Logged (and checkpointed: it can take minutes) as soon as it exists.
        progress.elapsedSeconds = elapsed();
        await saveRunCheckpoint(paths.checkpoint, values, progress);
        await writeRunOutputs(paths, log("running"));
      }
    }
    // A run stopped (or crashed) during an evaluation resumes with that evaluation.
    if (evaluationPending()) {
      console.error(`evaluating after epoch ${progress.epoch} (interrupted before it finished)`);
      if (!await evaluate(progress.epoch - 1)) return await interrupt();
      progress.elapsedSeconds = elapsed();
      await saveRunCheckpoint(paths.checkpoint, values, progress);
      await writeRunOutputs(
        paths,
        log(progress.epoch === config.train.epochs ? "finished" : "running"),
      );
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

      // Steps go to the session in groups of up to K consecutive full batches; a group never
      // crosses a stop point, and the last partial batch runs alone.
      let group: PlannedStep[] = [];
      const runGroup = async (): Promise<boolean> => {
        if (group.length === 0) return false;
        const planned = group;
        group = [];
        const { engine } = await stepFor(planned[0].size);
        const results = await engine.run(planned.map((p) => p.input), masks);
        for (const [i, result] of results.entries()) {
          const { labels, size, mu: muValue, lr } = planned[i];
          if (!Number.isFinite(result.loss)) {
            throw new Error(
              `epoch ${epoch + 1}, step ${progress.stepInEpoch}: the loss is ${result.loss}; ` +
                "stopped (the last checkpoint is kept)",
            );
          }
          rare?.add(result.extras.per_anchor_loss.data as Float32Array, labels);
          if (full.appliedOutput && result.extras[full.appliedOutput].data[0] === 0) {
            progress.epochSkippedUpdates = (progress.epochSkippedUpdates ?? 0) + 1;
          }
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
        }
        return stop.signal !== null || stepsThisSession === options.stopAfterSteps;
      };
      /** Keeps the epoch's partial sums in the progress, then checkpoints and logs the stop. */
      const stopMidEpoch = async () => {
        progress.mu = mu?.state() ?? null;
        const sums = rare?.result();
        progress.epochClassLoss = sums?.classLoss ?? null;
        progress.epochClassAnchors = sums?.classAnchors ?? null;
        bar?.finish({ status: "interrupted" }, false);
        return await interrupt();
      };

      for await (const b of loader.epoch(epoch, progress.stepInEpoch)) {
        const size = b.indices.length;
        // A batch of another size (the last, partial one) does not join the group before it.
        if (group.length > 0 && size !== group[0].size && await runGroup()) {
          return await stopMidEpoch();
        }
        const { step } = await stepFor(size);
        const index = progress.stepInEpoch + group.length;
        const augmented = await augmenter.augment(
          b.images,
          size,
          new Rng(config.seed, `augment/${epoch}/${index}`),
          b.sizes,
        );
        const muValue = mu ? mu.value() : null;
        const lr = lrAt(lrSchedule, progress.globalStep + group.length);
        if (index === 0) {
          progress.epochMu = muValue;
          progress.epochLr = lr;
        }
        group.push({
          size,
          labels: b.labels,
          mu: muValue,
          lr,
          input: {
            batch: {
              [step.inputs.view1]: augmented.views[0],
              [step.inputs.view2]: augmented.views[1],
            },
            scalars: { lr, step: progress.globalStep + group.length + 1, mu: muValue ?? 0 },
          },
        });
        const full = group.length === (size === batch ? stepsPerRun : 1);
        const atStop = options.stopAfterSteps !== undefined &&
          stepsThisSession + group.length === options.stopAfterSteps;
        if ((full || atStop || stop.signal) && await runGroup()) return await stopMidEpoch();
      }
      if (await runGroup()) return await stopMidEpoch();

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
        ...(full.appliedOutput ? { skippedUpdates: progress.epochSkippedUpdates ?? 0 } : {}),
      });
      if (progress.epochSkippedUpdates) {
        console.error(
          `epoch ${epoch + 1}: ${progress.epochSkippedUpdates} of ${progress.epochSteps} updates ` +
            `skipped (${precision}: a gradient overflowed under loss scaling)`,
        );
      }
      progress.epochClassLoss = null;
      progress.epochClassAnchors = null;
      mu?.epochEnd();
      progress.mu = mu?.state() ?? null;
      progress.epoch = epoch + 1;
      progress.stepInEpoch = 0;
      progress.epochLossSum = 0;
      progress.epochSteps = 0;
      progress.epochSkippedUpdates = 0;

      const last = progress.epoch === config.train.epochs;
      const every = config.train.checkpoint_every_n_epochs;
      const checkpointDue = last || (every !== null && progress.epoch % every === 0);
      // The checkpoint comes before the evaluation (a crash there loses no training) and again
      // after it (so that --resume does not evaluate twice).
      progress.elapsedSeconds = elapsed();
      if (checkpointDue) await saveRunCheckpoint(paths.checkpoint, values, progress);
      if (evaluator.due(epoch, last, progress.evaluations.length)) {
        if (!await evaluate(epoch)) return await interrupt();
        progress.elapsedSeconds = elapsed();
        if (checkpointDue) await saveRunCheckpoint(paths.checkpoint, values, progress);
      }
      await writeRunOutputs(paths, log(last ? "finished" : "running"));
    }
    return log("finished");
  } finally {
    stop.dispose();
    await augmenter.release();
    for (const { engine } of steps.values()) await engine.release();
  }
}

/** One step waiting for its group's session run, with what the host needs of it afterwards. */
interface PlannedStep {
  size: number;
  labels: Int32Array;
  mu: number | null;
  lr: number;
  input: StepInput;
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
