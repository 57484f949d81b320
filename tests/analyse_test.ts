/**
 * `analyse`: grouping over splits and seeds, mean ± population std computed
 * by hand, the paper comparison, original ETH logs, and bad input.
 */
import { assert, assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  analyseRuns,
  configSignature,
  findLogFiles,
  formatAnalysis,
  groupKey,
  type GroupSummary,
  matchPaper,
  meanScheduleForm,
  nearestPaper,
  readRunLog,
  type RunLog,
  withoutSplit,
} from "../src/report/mod.ts";
import { main } from "../mod.ts";

const FIXTURES = "tests/fixtures/report";
const ANALYSE_DIR = `${FIXTURES}/analyse`;

async function readAll(paths: string[]): Promise<RunLog[]> {
  return await Promise.all(paths.map(readRunLog));
}

function group(groups: GroupSummary[], label: string): GroupSummary {
  const found = groups.find((g) => g.label === label);
  if (!found) throw new Error(`no group ${label} in ${groups.map((g) => g.label).join(", ")}`);
  return found;
}

/** np.std: population standard deviation, written out. */
function npStd(values: number[]): number {
  const m = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((s, v) => s + (v - m) ** 2, 0) / values.length);
}

function checkStat(
  g: GroupSummary,
  metric: keyof GroupSummary["stats"],
  mean: number,
  std: number,
  n = 3,
) {
  const stat = g.stats[metric];
  assert(stat !== null, `${g.label} ${metric}: no value`);
  assertClose(stat.mean, mean, 1e-9, 1e-12, `${g.label} ${metric} mean`);
  assertClose(stat.std, std, 1e-9, 1e-12, `${g.label} ${metric} std`);
  assertEquals(stat.n, n, `${g.label} ${metric} n`);
}

Deno.test("analyse: mean ± population std over three splits of two methods", async () => {
  const analysis = analyseRuns(await readAll(await findLogFiles([ANALYSE_DIR])));
  assertEquals(analysis.groups.map((g) => [g.label, g.runs.length]), [
    ["sdclr_cifar10_D_i", 3],
    ["simclr_cifar10_D_b", 1],
    ["simclr_cifar10_D_i", 3],
  ]);
  const sdclr = group(analysis.groups, "sdclr_cifar10_D_i");
  assertEquals(sdclr.runs.map((r) => r.split), [1, 2, 3]);
  // Splits 1..3 were written with linear 80/82/84 %, few-shot 60/62/64 %,
  // many 86/88/90, medium 80/82/84, few 74/77/71, kNN 70/72/(none), loss 5.0/5.2/5.4.
  checkStat(sdclr, "linear", 82, Math.sqrt(8 / 3));
  checkStat(sdclr, "fewShot", 62, Math.sqrt(8 / 3));
  checkStat(sdclr, "many", 88, Math.sqrt(8 / 3));
  checkStat(sdclr, "medium", 82, Math.sqrt(8 / 3));
  checkStat(sdclr, "few", 74, Math.sqrt(6));
  checkStat(sdclr, "knn", 71, 1, 2);
  checkStat(sdclr, "finalLoss", 5.2, Math.sqrt(0.08 / 3));
  // Balancedness of each split: np.std of its three group accuracies (fractions).
  const balancedness = [
    npStd([0.86, 0.80, 0.74]), // √0.0024 = 0.048990
    npStd([0.88, 0.82, 0.77]), // 0.044969
    npStd([0.90, 0.84, 0.71]), // 0.079303
  ];
  assertClose(balancedness[0], Math.sqrt(0.0024), 1e-12);
  checkStat(
    sdclr,
    "balancedness",
    (balancedness[0] + balancedness[1] + balancedness[2]) / 3,
    npStd(balancedness),
  );
  assertClose(sdclr.stats.balancedness!.mean, 0.0577538, 1e-5);

  const simclr = group(analysis.groups, "simclr_cifar10_D_i");
  checkStat(simclr, "linear", 76, Math.sqrt(2 / 3));
  checkStat(simclr, "many", 81, Math.sqrt(2 / 3));
  checkStat(simclr, "medium", 76, Math.sqrt(8 / 3));
  checkStat(simclr, "few", 71, Math.sqrt(2 / 3));
  checkStat(simclr, "knn", 66, Math.sqrt(2 / 3));
  assertEquals(simclr.stats.fewShot, null);

  const text = formatAnalysis(analysis);
  assert(text.includes("82.00 ± 1.63"), text);
  assert(text.includes("71.00 ± 1.00 (2/3)"), text);
  assert(text.includes("population standard deviation"), text);
});

/** The fixture runs of a group with splits 4 and 5 added (copies of split 1): the paper's five. */
function fiveSplits(runs: RunLog[], prefix: string): RunLog[] {
  const split1 = runs.find((r) => r.log.experiment === `${prefix}_split1_D_i`)!;
  const added = [4, 5].map((k) => {
    const copy: RunLog = structuredClone(split1);
    copy.path = split1.path.replace("split1", `split${k}`);
    copy.log.experiment = `${prefix}_split${k}_D_i`;
    copy.log.status = "finished";
    return copy;
  });
  return [
    ...runs.filter((r) =>
      r.log.experiment.startsWith(`${prefix}_split`) && r.log.status === "finished"
    ),
    ...added,
  ];
}

Deno.test("analyse: five splits measured as the paper get paper and mean − paper", async () => {
  const runs = await readAll(await findLogFiles([ANALYSE_DIR]));
  const analysis = analyseRuns([
    ...fiveSplits(runs, "sdclr_cifar10"),
    ...fiveSplits(runs, "simclr_cifar10"),
  ]);
  const rows = (label: string) =>
    group(analysis.groups, label).paper.map((
      p,
    ) => [p.metric, p.paper, Number(p.difference!.toFixed(6))]);
  // SDCLR paper (SPEC §B): SDCLR 86.44/81.84/76.23, SimCLR 78.18/76.23/71.37. Splits 1..5 have
  // many 86/88/90/86/86 (mean 87.2), medium 80/82/84/80/80 (81.2), few 74/77/71/74/74 (74).
  assertEquals(rows("sdclr_cifar10_D_i"), [
    ["many", 86.44, 0.76],
    ["medium", 81.84, -0.64],
    ["few", 76.23, -2.23],
  ]);
  // SimCLR: many 80/82/81/80/80 (80.6), medium 76/78/74/76/76 (76), few 70/72/71/70/70 (70.6).
  assertEquals(rows("simclr_cifar10_D_i"), [
    ["many", 78.18, 2.42],
    ["medium", 76.23, -0.23],
    ["few", 71.37, -0.77],
  ]);
  const text = formatAnalysis(analysis);
  assert(/sdclr_cifar10_D_i\s+ours\s+many\s+87\.20 ± 1\.60\s+86\.44\s+\+0\.76/.test(text), text);
  assert(!text.includes("not comparable"), text);
});

Deno.test("analyse: a run measured differently from the paper is marked not comparable, naming how", async () => {
  const analysis = analyseRuns(await readAll(await findLogFiles([ANALYSE_DIR])));
  // Three of the paper's five splits.
  const sdclr = group(analysis.groups, "sdclr_cifar10_D_i");
  assertEquals(sdclr.paper.map((p) => [p.metric, p.paper, p.comparable, p.difference]), [
    ["many", 86.44, false, null],
    ["medium", 81.84, false, null],
    ["few", 76.23, false, null],
  ]);
  assertEquals(sdclr.paper[0].protocolDifferences, [{ field: "runs", ours: 3, paper: 5 }]);
  const text = formatAnalysis(analysis);
  assert(
    /sdclr_cifar10_D_i\s+ours\s+many\s+88\.00 ± 1\.63\s+86\.44\s+not comparable/.test(text),
    text,
  );
  assert(text.includes("sdclr_cifar10_D_i: runs 3 (paper 5)"), text);

  // Five splits, but the probe shortened with --set evaluation.linear.epochs=1 and a smaller data set.
  const runs = fiveSplits(await readAll(await findLogFiles([ANALYSE_DIR])), "sdclr_cifar10");
  for (const run of runs) {
    (run.config.evaluation.linear as { epochs: number }).epochs = 1;
    (run.log as unknown as { data_counts: { pretrain: number } }).data_counts.pretrain = 2000;
  }
  const shortened = analyseRuns(runs).groups[0];
  assertEquals(shortened.paper[0].difference, null);
  assertEquals(shortened.paper[0].protocolDifferences, [
    { field: "probe_epochs", ours: 1, paper: 30 },
    { field: "pretrain_images", ours: 2000, paper: 11165 },
  ]);
  assert(
    formatAnalysis(analyseRuns(runs)).includes(
      "probe_epochs 1 (paper 30), pretrain_images 2000 (paper 11165)",
    ),
  );
});

Deno.test("analyse: pretrained on D_b is its own group, with the nearest paper setting named", async () => {
  const analysis = analyseRuns(await readAll(await findLogFiles([ANALYSE_DIR])));
  // Pretrained on the balanced D_b: a separate group, no paper value, one field off.
  const balanced = group(analysis.groups, "simclr_cifar10_D_b");
  assertEquals(balanced.paper, []);
  assertEquals(balanced.nearest?.differences, [{
    field: "pretrain_split",
    ours: "D_b",
    paper: "D_i",
  }]);
  // One run where the paper averaged five splits: said as well.
  assertEquals(balanced.nearest?.protocolDifferences, [{ field: "runs", ours: 1, paper: 5 }]);
  assert(
    formatAnalysis(analysis).includes(
      'simclr_cifar10_D_b: "SDCLR paper: SimCLR on CIFAR-10-LT": pretrain_split "D_b" (paper "D_i"); ' +
        "measured differently: runs 1 (paper 5)",
    ),
  );
});

Deno.test("analyse: unfinished runs are left out unless asked for", async () => {
  const runs = await readAll(await findLogFiles([ANALYSE_DIR]));
  const analysis = analyseRuns(runs);
  assertEquals(analysis.skipped.map((s) => [s.path.split("/").pop(), s.status]), [
    ["simclr_cifar10_split4_D_i.json", "interrupted"],
  ]);
  const all = analyseRuns(runs, { includeUnfinished: true });
  const simclr = group(all.groups, "simclr_cifar10_D_i");
  assertEquals(simclr.runs.map((r) => r.split), [1, 2, 3, 4]);
  // Split 4 was written with 10 % linear accuracy: mean of 75, 77, 76, 10.
  assertClose(simclr.stats.linear!.mean, (75 + 77 + 76 + 10) / 4, 1e-9);
});

Deno.test("analyse: grouping ignores seed and split number, not the setting", async () => {
  const [split1, split2] = await readAll([
    `${ANALYSE_DIR}/sdclr_cifar10_split1_D_i.json`,
    `${ANALYSE_DIR}/sdclr_cifar10_split2_D_i.json`,
  ]);
  assertEquals(groupKey(split1), groupKey(split2));
  const reseeded: RunLog = structuredClone(split1);
  reseeded.config.seed = 123;
  reseeded.config.device = "cuda";
  assertEquals(groupKey(reseeded), groupKey(split1));
  const shorter: RunLog = structuredClone(split1);
  shorter.config.train.epochs = 5;
  assert(groupKey(shorter) !== groupKey(split1), "epochs must separate groups");
  assertEquals(withoutSplit("sdclr_cifar100_split3_D_i"), "sdclr_cifar100_D_i");
  assertEquals(withoutSplit("split2_D_b"), "D_b");
  // A run shortened with --epochs is of the paper's setting, measured differently: not comparable.
  const signature = configSignature(shorter.config);
  assertEquals(matchPaper(signature).map((e) => e.label), ["SDCLR on CIFAR-10-LT (prune 90 %)"]);
  const compared = analyseRuns([shorter]).groups[0].paper[0];
  assertEquals(compared.comparable, false);
  assertEquals(compared.protocolDifferences.map((d) => [d.field, d.ours, d.paper]), [
    ["epochs", 5, 2000],
    ["runs", 1, 5],
  ]);
  assertEquals(nearestPaper({ ...signature, pretrain_split: "D_b" })?.differences, [
    { field: "pretrain_split", ours: "D_b", paper: "D_i" },
  ]);
});

Deno.test("analyse: original ETH logs are read (NaN losses too) and matched to the paper", async () => {
  const runs = await readAll(await findLogFiles([`${FIXTURES}/eth`]));
  assertEquals(runs.map((r) => r.source), ["eth-original", "eth-original"]);
  const analysis = analyseRuns(runs);
  const e2 = group(analysis.groups, "experiment_2 (ETH original)");
  // The log's last model score is 0.8180000185966492; the paper reports 81.80.
  assertEquals(e2.paper.map((p) => [p.entry, p.paper]), [["SimCLR τ 0.1, batch 256", 81.8]]);
  assertClose(e2.paper[0].ours, 81.80000185966492, 1e-12);
  assert(Math.abs(e2.paper[0].difference!) < 1e-5, `difference ${e2.paper[0].difference}`);
  // The original logs are the paper's runs: shown as such, not as ours.
  const table = formatAnalysis(analysis);
  assert(/experiment_2 \(ETH original\)\s+ETH original log\s+linear\s+81\.80/.test(table), table);
  assertClose(e2.stats.finalLoss!.mean, 1.0918, 1e-4);
  // C3 writes a constant μ as LinearParam begin = end = 0.6 (100 steps).
  const c3 = group(analysis.groups, "experiment_C3 (ETH original)");
  assertEquals(c3.signature.mean, "const 0.6");
  assertEquals(c3.paper.map((p) => [p.entry, p.paper]), [[
    "CIFAR-100 WeightedNTXent constant μ 0.6",
    54.61,
  ]]);
  assertClose(c3.paper[0].ours, 54.61, 1e-6);
  // Python's NaN tokens are accepted.
  const nanPath = await writeTemp(
    `{"experiment": "x", "config": ${JSON.stringify(runs[0].log.config)}, ` +
      `"average_training_loss_per_epoch": [1.5, NaN, Infinity], "model_scores": [0.5]}`,
  );
  const nan = await readRunLog(nanPath).finally(() => Deno.remove(nanPath));
  assert(Number.isNaN(nan.log.average_training_loss_per_epoch[1]), "NaN read as NaN");
  assertEquals(nan.log.average_training_loss_per_epoch[2], Infinity);
});

async function writeTemp(text: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("analyse: μ schedules compare in normal form", () => {
  assertEquals(meanScheduleForm({ type: "linear", begin: 0.6, end: 0.6, steps: 500 }), "const 0.6");
  assertEquals(meanScheduleForm({ type: "const", value: 0.6 }), "const 0.6");
  assertEquals(
    meanScheduleForm({ type: "linear", begin: -1, end: 1, steps: 500 }),
    "linear -1→1 over 500 epochs",
  );
  assertEquals(
    meanScheduleForm({
      type: "random_then_const",
      begin: -1,
      end: 1,
      steps: 200,
      const_value: 0.8,
    }),
    "random -1..1 for 200 epochs, then 0.8",
  );
});

Deno.test("analyse: bad input is one error naming the file", async () => {
  const notLog = `${FIXTURES}/not_a_log.json`;
  await assertThrowsMessage(
    () => readRunLog(notLog),
    notLog,
    "not an experiment log",
    "average_training_loss_per_epoch",
  );
  await assertThrowsMessage(
    () => readRunLog("config/quickstart.yaml"),
    "config/quickstart.yaml",
    "not JSON",
  );
  await assertThrowsMessage(
    () => findLogFiles(["no/such/logs.json"]),
    "no/such/logs.json",
    "no such file",
  );
  await assertThrowsMessage(
    () => findLogFiles([`${FIXTURES}/eth/*.nothing`]),
    "*.nothing",
    "no .json files",
  );
  // The command: exit code 1 and the file named on stderr.
  const { code, stderr } = await capture(() => main(["analyse", ANALYSE_DIR, notLog]));
  assertEquals(code, 1);
  assert(stderr.includes(notLog) && stderr.includes("not an experiment log"), stderr);
});

async function capture(fn: () => Promise<number>) {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => out.push(args.join(" "));
  console.error = (...args: unknown[]) => err.push(args.join(" "));
  try {
    const code = await fn();
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("analyse: the command takes files, directories and globs; --json", async () => {
  const files = await findLogFiles([`${ANALYSE_DIR}/sdclr_*.json`]);
  assertEquals(files.map((f) => f.split("/").pop()), [
    "sdclr_cifar10_split1_D_i.json",
    "sdclr_cifar10_split2_D_i.json",
    "sdclr_cifar10_split3_D_i.json",
  ]);
  const { code, stdout } = await capture(() =>
    main(["analyse", `${ANALYSE_DIR}/sdclr_*.json`, `${FIXTURES}/eth/experiment_2.json`, "--json"])
  );
  assertEquals(code, 0);
  const json = JSON.parse(stdout);
  assertEquals(json.groups.map((g: GroupSummary) => g.label), [
    "experiment_2 (ETH original)",
    "sdclr_cifar10_D_i",
  ]);
  assertClose(json.groups[1].stats.linear.mean, 82, 1e-9);
  const table = await capture(() => main(["analyse", `${FIXTURES}/eth`]));
  assertEquals(table.code, 0);
  assert(/experiment_C3 \(ETH original\)\s+1\s+54\.61/.test(table.stdout), table.stdout);
});
