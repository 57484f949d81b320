/**
 * The HTML report: every curve is plotted with one point per epoch at the
 * right place (coordinates read back out of the SVG), the tables hold the
 * log's numbers, the page is self-contained, and the runner's writer keeps
 * the log and the report in step.
 */
import { join } from "node:path";
import { assert, assertAllClose, assertEquals } from "./assert.ts";
import { readRunLog, renderReport, writeRunOutputs } from "../src/report/mod.ts";
import type { ExperimentLog } from "../src/train/log.ts";
import { main } from "../mod.ts";

const FIXTURES = "tests/fixtures/report";
/** Plot area of the line charts (src/report/plots.ts). */
const WIDTH = 520;

interface Line {
  label: string;
  points: [number, number][];
}

/** The SVG charts of a page, by title, with the line paths of each. */
function charts(html: string): Map<string, { svg: string; lines: Line[] }> {
  const found = new Map<string, { svg: string; lines: Line[] }>();
  for (const svg of html.match(/<svg[\s\S]*?<\/svg>/g) ?? []) {
    const title = /role-title-text[^>]*>[\s\S]*?<text[^>]*>([^<]*)<\/text>/.exec(svg)?.[1];
    assert(title !== undefined, "every chart has a title");
    const lines = [...svg.matchAll(/<g class="mark-line role-mark[^>]*>([\s\S]*?)<\/g>/g)].map(
      (m) => {
        const label = /aria-label="([^"]*)"/.exec(m[1])![1];
        const d = / d="([^"]*)"/.exec(m[1])![1];
        const points = [...d.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)]
          .map((p) => [Number(p[1]), Number(p[2])] as [number, number]);
        return { label, points };
      },
    );
    found.set(title, { svg, lines });
  }
  return found;
}

/** For a linear scale, (y_i − y_0)/(y_last − y_0) in pixels equals the same ratio of the values. */
function relative(values: number[]): number[] {
  return values.map((v) => (v - values[0]) / (values[values.length - 1] - values[0]));
}

Deno.test("report: every curve has one point per epoch, placed by its value", async () => {
  const { log } = await readRunLog(`${FIXTURES}/report_run.json`);
  const html = await renderReport(log);
  const all = charts(html);
  assertEquals([...all.keys()], [
    "training loss",
    "μ (weight mean) per epoch",
    "learning rate (first step of each epoch)",
    "throughput",
    "test accuracy",
    "per-class linear accuracy, epoch 6",
    "SDCLR diagnostics",
  ]);
  const epochX = [1, 2, 3, 4, 5, 6].map((e) => (WIDTH * e) / 6);
  const checkLine = (title: string, values: number[], firstLabel: string) => {
    const [line] = all.get(title)!.lines;
    assertEquals(line.points.length, values.length, `${title}: points`);
    assertEquals(line.label, firstLabel, `${title}: first datum`);
    assertAllClose(line.points.map((p) => p[0]), epochX, 0, 0.01, `${title}: x`);
    // Screen y grows downwards: the pixel ratios equal the value ratios.
    assertAllClose(
      relative(line.points.map((p) => p[1])),
      relative(values),
      0,
      2e-3,
      `${title}: y`,
    );
  };
  checkLine(
    "training loss",
    [6.2, 5.9, 5.5, 5.3, 5.2, 5.15],
    "epoch: 1; average training loss: 6.2; series: loss",
  );
  checkLine(
    "μ (weight mean) per epoch",
    [-0.2, 0, 0.2, 0.4, 0.6, 0.6],
    "epoch: 1; μ: −0.2; series: μ",
  );
  checkLine(
    "throughput",
    [1000, 1010, 1020, 1030, 1040, 1050],
    "epoch: 1; views / s: 1000; series: views/s",
  );
  const lr = all.get("learning rate (first step of each epoch)")!.lines[0];
  assertEquals(lr.points.length, 6);

  // Accuracies: three series evaluated after epochs 3 and 6.
  const accuracy = all.get("test accuracy")!;
  assertEquals(accuracy.lines.map((l) => l.label), [
    "epoch: 3; test accuracy (%): 70; series: linear",
    "epoch: 3; test accuracy (%): 50; series: few-shot",
    "epoch: 3; test accuracy (%): 60; series: kNN",
  ]);
  for (const line of accuracy.lines) {
    assertAllClose(line.points.map((p) => p[0]), [WIDTH / 2, WIDTH], 0, 0.01);
  }
  assert(accuracy.svg.includes("X-axis titled 'epoch'"), "x axis title");
  assert(accuracy.svg.includes("Y-axis titled 'test accuracy (%)'"), "y axis title");

  // Diagnostics: sparsity 90 % and the rare-class shares, 6 epochs each.
  const diagnostics = all.get("SDCLR diagnostics")!;
  assertEquals(diagnostics.lines.map((l) => [l.label, l.points.length]), [
    ["epoch: 1; %: 90; series: mask sparsity", 6],
    ["epoch: 1; %: 12; series: rare-class loss share", 6],
    ["epoch: 1; %: 5; series: rare-class sample share", 6],
  ]);

  // Per-class bars, coloured by group.
  const bars = [...all.get("per-class linear accuracy, epoch 6")!.svg.matchAll(
    /aria-label="class: ([^;]*); test accuracy \(%\): ([\d.]+); group: (\w+)"/g,
  )].map((m) => [m[1], Number(m[2]), m[3]]);
  assertEquals(bars.length, 10);
  assertEquals(bars[0], ["airplane", 86, "many"]);
  assertEquals(bars[9], ["truck", 74, "few"]);
});

Deno.test("report: tables hold the evaluations, groups, diagnostics, config, environment", async () => {
  const { log } = await readRunLog(`${FIXTURES}/report_run.json`);
  const html = await renderReport(log);
  assert(html.includes("<title>report_fixture: experiment report</title>"), "title");
  const row = (...cells: string[]) => `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  // Evaluations after epochs 3 and 6.
  assert(
    html.includes(row("3", "70.00", "70.00", "50.00", "60.00", "best epoch 29, val 71.00", "30.0")),
    "eval 3",
  );
  assert(
    html.includes(row("6", "80.00", "80.00", "60.00", "70.00", "best epoch 29, val 81.00", "30.0")),
    "eval 6",
  );
  // Per-class accuracy of the last evaluation.
  assert(html.includes(row("0", "airplane", "many", "86.00", "60.00", "70.00")), "class 0");
  assert(html.includes(row("9", "truck", "few", "74.00", "60.00", "70.00")), "class 9");
  // Groups and balancedness (np.std of 0.86, 0.80, 0.74 = √0.0024).
  assert(
    html.includes(row("linear", "86.00", "80.00", "74.00", Math.sqrt(0.0024).toFixed(4))),
    "groups",
  );
  // Last epoch's diagnostics: loss share 0.12 + 5 · 0.01.
  assert(html.includes(row("rare-class loss share (%)", "17.00")), "loss share");
  assert(html.includes(row("layer sparsity range (%)", "80.00–95.00")), "layer range");
  assert(html.includes(row("epochs", "6 of 6")), "epochs");
  assert(html.includes("type: weighted_ntxent"), "config as YAML");
  assert(html.includes(row("onnxruntime", "1.29.0")), "environment");
  // The groups' source is the reference split, and the headline accuracy says what it is.
  assert(
    html.includes(
      "Groups from the class counts of splits/cifar10_imbSub_with_subsets/split1_D_i.npy, the " +
        "pretraining split (evaluation.groups: classes ranked by their count, groups of [4,3,3] classes)",
    ),
    "group source",
  );
  assert(html.includes("last test accuracy (%) (linear probe)"), "headline metric named");
});

Deno.test("report: a run pretrained on D_b says its groups come from D_i's counts", async () => {
  const { log } = await readRunLog(`${FIXTURES}/analyse/simclr_cifar10_split1_D_b.json`);
  const html = await renderReport(log);
  assert(
    html.includes(
      "Groups from the class counts of splits/cifar10_imbSub_with_subsets/split1_D_i.npy " +
        "(evaluation.groups: classes ranked",
    ),
    "D_b run: groups from D_i",
  );
  assert(
    !html.includes("class counts of the pretraining split"),
    "no claim about the pretraining split",
  );
});

Deno.test("report: the page is self-contained (nothing fetched from outside)", async () => {
  const { log } = await readRunLog(`${FIXTURES}/report_run.json`);
  const html = await renderReport(log);
  for (const banned of ["<script", "<link", "<img", "<iframe", "src=", "@import"]) {
    assert(!html.includes(banned), `page contains ${banned}`);
  }
  // The only URLs are the SVG namespace names, which are never fetched.
  const urls = new Set(html.match(/https?:\/\/[^"' )]*/g));
  assertEquals([...urls].sort(), ["http://www.w3.org/1999/xlink", "http://www.w3.org/2000/svg"]);
  // Each chart's ids are its own.
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
  assertEquals(ids.length, new Set(ids).size);
});

Deno.test("report: an original ETH log plots 500 epochs and five evaluations", async () => {
  const { log } = await readRunLog(`${FIXTURES}/eth/experiment_2.json`);
  const all = charts(await renderReport(log));
  assertEquals([...all.keys()], ["training loss", "test accuracy"]);
  assertEquals(all.get("training loss")!.lines[0].points.length, 500);
  const [scores] = all.get("test accuracy")!.lines;
  // testing_every_n_epochs 100: after epochs 100..500.
  assertAllClose(scores.points.map((p) => p[0]), [104, 208, 312, 416, 520], 0, 0.01);
  assertAllClose(
    relative(scores.points.map((p) => p[1])),
    relative(log.model_scores.map((s) => 100 * s)),
    0,
    2e-3,
  );
});

Deno.test("report: the runner's writer keeps the log and the report in step", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { log } = await readRunLog(`${FIXTURES}/report_run.json`);
    const full = log as ExperimentLog;
    const upTo = (epochs: number, status: string): ExperimentLog => ({
      ...full,
      status,
      average_training_loss_per_epoch: full.average_training_loss_per_epoch.slice(0, epochs),
      epochs: full.epochs.slice(0, epochs),
    });
    const paths = { log: join(dir, "run.json"), report: join(dir, "run.html") };
    await writeRunOutputs(paths, upTo(3, "running"));
    assert((await Deno.readTextFile(paths.report)).includes("<td>3 of 6</td>"), "first report");
    // While running, a report rendered less than 30 s ago is kept; the log is always new.
    await writeRunOutputs(paths, upTo(4, "running"));
    assertEquals(
      JSON.parse(await Deno.readTextFile(paths.log)).average_training_loss_per_epoch.length,
      4,
    );
    assert((await Deno.readTextFile(paths.report)).includes("<td>3 of 6</td>"), "report kept");
    // The end of a run always gets its report.
    await writeRunOutputs(paths, upTo(6, "finished"));
    assert((await Deno.readTextFile(paths.report)).includes("<td>6 of 6</td>"), "final report");
    const files = [];
    for await (const entry of Deno.readDir(dir)) files.push(entry.name);
    assertEquals(files.sort(), ["run.html", "run.json"], "no temporary files left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: the command writes the page beside the log", async () => {
  const dir = await Deno.makeTempDir();
  const { log, error } = console;
  console.log = () => {};
  console.error = () => {};
  try {
    const path = join(dir, "experiment_C3.json");
    await Deno.copyFile(`${FIXTURES}/eth/experiment_C3.json`, path);
    assertEquals(await main(["report", path]), 0);
    const html = await Deno.readTextFile(join(dir, "experiment_C3.html"));
    assert(html.includes("<h1>experiment_C3: experiment report</h1>"), "page written");
    assertEquals(
      await main(["report", `${FIXTURES}/not_a_log.json`, "--out", join(dir, "x.html")]),
      1,
    );
  } finally {
    console.log = log;
    console.error = error;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("report: the random-init baseline is evaluation 0, plotted and compared", async () => {
  const { log } = await readRunLog(`${FIXTURES}/report_run.json`);
  const withBaseline = {
    ...log,
    random_init_evaluation: {
      epoch: -1,
      accuracy: 0.2,
      details: { linear: { protocol: "eth", testAccuracy: 0.2 }, knn: { accuracy: 0.25 } },
    },
  };
  const html = await renderReport(withBaseline);
  const row = (...cells: string[]) => `<tr>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  assert(
    html.includes(row("0 (random init)", "20.00", "20.00", "—", "25.00", "wd —", "—")),
    "table row",
  );
  assert(
    html.includes(row("random-init test accuracy (%)", "20.00; pretrained − random: 60.00 points")),
    "summary compares the last score with the baseline",
  );
  const accuracy = charts(html).get("test accuracy")!;
  const linear = accuracy.lines.find((l) => l.label.includes("linear"))!;
  assertEquals(linear.points.length, 3, "baseline at epoch 0, then epochs 3 and 6");
  assertAllClose(relative(linear.points.map((p) => p[0])), [0, 0.5, 1], 1e-3, 0);
  assertAllClose(relative(linear.points.map((p) => -p[1])), relative([20, 70, 80]), 1e-3, 0);
});
