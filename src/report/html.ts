/**
 * The HTML report of one run: a self-contained page (inline CSS and SVG, no
 * script, no link to anything outside it) with the curves over epochs (loss,
 * μ, learning rate, views/s, accuracies, SDCLR diagnostics) and the tables of
 * the evaluations, per-class accuracy, class groups, config and environment.
 */
import { stringify } from "yaml";
import { CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from "../data/cifar_names.ts";
import { barChartSvg, lineChartSvg, type Series } from "./plots.ts";
import type { LogRecord } from "./read.ts";
import type { DataProvenance } from "../train/experiment_data.ts";

type Json = Record<string, unknown>;

function record(value: unknown): Json | null {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value as Json
    : null;
}

function num(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

function numbers(value: unknown): (number | null)[] {
  return Array.isArray(value) ? value.map(num) : [];
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

const pct = (
  v: number | null,
  d = 2,
) => (v === null || !Number.isFinite(v) ? "—" : (100 * v).toFixed(d));
const fixed = (v: number | null, d = 4) => (v === null || !Number.isFinite(v) ? "—" : v.toFixed(d));

function table(header: string[], rows: string[][], className = ""): string {
  // Key/value tables pass an empty header: no header row then.
  const head = header.some((h) => h !== "")
    ? `<thead><tr>${header.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>`
    : "";
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`)
    .join("\n");
  return `<table${
    className ? ` class="${className}"` : ""
  }>${head}<tbody>\n${body}\n</tbody></table>`;
}

function section(title: string, body: string): string {
  return `<section><h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
}

/** One evaluation as the report reads it. */
interface EvalPoint {
  /** Epochs done when it ran (0: the random-init baseline). */
  epoch: number;
  score: number | null;
  details: Json | null;
}

/** Evaluations of the log; for original ETH logs placed every `testing_every_n_epochs`. */
function evaluationPoints(log: LogRecord): EvalPoint[] {
  if (log.evaluations) {
    const baseline = log.random_init_evaluation ? [log.random_init_evaluation] : [];
    return [...baseline, ...log.evaluations].map((e) => ({
      epoch: e.epoch + 1,
      score: num(e.accuracy),
      details: record(e.details),
    }));
  }
  const every = num(record(record(log.config)?.testing)?.testing_every_n_epochs) ?? 1;
  return log.model_scores.map((score, i) => ({ epoch: (i + 1) * every, score, details: null }));
}

function perEpoch(values: (number | null)[], scale = 1): Series["points"] {
  return values.flatMap((y, i) => (y === null ? [] : [{ x: i + 1, y: y * scale }]));
}

function classNames(log: LogRecord, count: number): string[] {
  const dataset = record(record(log.resolved_config)?.data)?.dataset ??
    (record(record(record(log.config)?.pretraining)?.dataset)?.name === "Cifar100"
      ? "cifar100"
      : "cifar10");
  const names = dataset === "cifar100" ? CIFAR100_FINE_CLASSES : CIFAR10_CLASSES;
  return Array.from({ length: count }, (_, k) => (names.length === count ? names[k] : String(k)));
}

/** The x axis of the charts over epochs: 0 to the last epoch logged or evaluated. */
function epochAxisOf(log: LogRecord, evals: EvalPoint[]) {
  const last = Math.max(
    1,
    log.average_training_loss_per_epoch.length,
    ...evals.map((e) => e.epoch),
  );
  return { xTitle: "epoch", xDomain: [0, last] as [number, number], xIntegers: true };
}

async function curves(log: LogRecord, evals: EvalPoint[]): Promise<string[]> {
  const epochAxis = epochAxisOf(log, evals);
  const svgs: string[] = [];
  svgs.push(
    await lineChartSvg({
      title: "training loss",
      ...epochAxis,
      yTitle: "average training loss",
      series: [{ name: "loss", points: perEpoch(log.average_training_loss_per_epoch) }],
    }),
  );
  const mu = numbers(log.mu_per_epoch);
  if (mu.some((v) => v !== null)) {
    svgs.push(
      await lineChartSvg({
        title: "μ (weight mean) per epoch",
        ...epochAxis,
        yTitle: "μ",
        series: [{ name: "μ", points: perEpoch(mu) }],
      }),
    );
  }
  const lr = numbers(log.lr_per_epoch);
  if (lr.length > 0) {
    svgs.push(
      await lineChartSvg({
        title: "learning rate (first step of each epoch)",
        ...epochAxis,
        yTitle: "learning rate",
        series: [{ name: "lr", points: perEpoch(lr) }],
      }),
    );
  }
  const speed = numbers(log.views_per_second_per_epoch);
  if (speed.length > 0) {
    svgs.push(
      await lineChartSvg({
        title: "throughput",
        ...epochAxis,
        yTitle: "views / s",
        series: [{ name: "views/s", points: perEpoch(speed) }],
      }),
    );
  }
  const accuracy: Series[] = [];
  const from = (name: string, pick: (e: EvalPoint) => number | null) => {
    const points = evals.flatMap((e) => {
      const y = pick(e);
      return y === null ? [] : [{ x: e.epoch, y: 100 * y }];
    });
    if (points.length > 0) accuracy.push({ name, points });
  };
  if (log.evaluations) {
    from("linear", (e) => num(record(e.details?.linear)?.testAccuracy));
    from("few-shot", (e) => num(record(e.details?.fewShot)?.testAccuracy));
    from("kNN", (e) => num(record(e.details?.knn)?.accuracy));
  } else {
    from("linear (model_scores)", (e) => e.score);
  }
  if (accuracy.length > 0) {
    svgs.push(
      await lineChartSvg({
        title: "test accuracy",
        ...epochAxis,
        yTitle: "test accuracy (%)",
        series: accuracy,
      }),
    );
  }
  return svgs;
}

/** Per-epoch SDCLR diagnostics (mask sparsity, rare-class loss share), when logged. */
async function diagnosticsSection(
  log: LogRecord,
  epochAxis: ReturnType<typeof epochAxisOf>,
): Promise<string> {
  const epochs = (log.epochs ?? []).map((e) => ({
    epoch: e.epoch + 1,
    diagnostics: record(e.diagnostics),
  })).filter((e) => e.diagnostics !== null);
  if (epochs.length === 0) return "";
  const rare = (e: (typeof epochs)[number]) => record(e.diagnostics!.rareClasses);
  const series: Series[] = [];
  const add = (name: string, pick: (e: (typeof epochs)[number]) => number | null) => {
    const points = epochs.flatMap((e) => {
      const y = pick(e);
      return y === null ? [] : [{ x: e.epoch, y: 100 * y }];
    });
    if (points.length > 0) series.push({ name, points });
  };
  add("mask sparsity", (e) => num(e.diagnostics!.sparsity));
  add("rare-class loss share", (e) => num(rare(e)?.lossShare));
  add("rare-class sample share", (e) => num(rare(e)?.sampleShare));
  if (series.length === 0) return "";
  const hasMasks = epochs.some((e) => num(e.diagnostics!.sparsity) !== null);
  const title = hasMasks ? "SDCLR diagnostics" : "Rare-class diagnostics";
  const chart = await lineChartSvg({
    title,
    ...epochAxis,
    yTitle: "%",
    series,
  });
  const last = epochs[epochs.length - 1];
  const layerValues = Object.entries(record(last.diagnostics!.layerSparsity) ?? {})
    .map(([name, value]) => [name, num(value)] as const);
  const layers = layerValues.map(([name, value]) => [name, pct(value)]);
  const lastRare = rare(last);
  const rows: string[][] = hasMasks
    ? [["mask sparsity (%)", pct(num(last.diagnostics!.sparsity))]]
    : [];
  const values = layerValues.flatMap(([, v]) => (v === null ? [] : [v]));
  if (values.length > 0) {
    rows.push([
      "layer sparsity range (%)",
      `${pct(Math.min(...values))}–${pct(Math.max(...values))}`,
    ]);
  }
  if (lastRare) {
    rows.push(
      [
        "rare classes",
        (Array.isArray(lastRare.rareClasses) ? lastRare.rareClasses : []).join(", "),
      ],
      ["rare-class loss share (%)", pct(num(lastRare.lossShare))],
      ["rare-class sample share (%)", pct(num(lastRare.sampleShare))],
    );
  }
  const layerTable = layers.length > 0
    ? `<details><summary>sparsity per layer (last epoch)</summary>${
      table(["conv weight", "sparsity (%)"], layers)
    }</details>`
    : "";
  return section(
    title,
    `<div class="plot">${chart}</div>\n<p>Last epoch (${last.epoch}):</p>${
      table(["diagnostic", "value"], rows)
    }${layerTable}`,
  );
}

function evaluationsTable(evals: EvalPoint[]): string {
  const rows = evals.map((e) => {
    const d = e.details ?? {};
    const linear = record(d.linear);
    const chosen = linear?.protocol === "eth"
      ? `wd ${num(linear.weightDecay)?.toExponential(1) ?? "—"}`
      : linear?.protocol === "sdclr"
      ? `best epoch ${num(linear.bestEpoch) ?? "—"}, val ${pct(num(linear.valAccuracy))}`
      : "";
    return [
      e.epoch === 0 ? "0 (random init)" : String(e.epoch),
      pct(e.score),
      pct(num(linear?.testAccuracy)),
      pct(num(record(d.fewShot)?.testAccuracy)),
      pct(num(record(d.knn)?.accuracy)),
      chosen,
      fixed(num(d.seconds), 1),
    ];
  });
  return table(
    ["epoch", "model score %", "linear %", "few-shot %", "kNN %", "linear model chosen", "seconds"],
    rows,
    "numbers",
  );
}

async function lastEvaluationSection(log: LogRecord, last: EvalPoint): Promise<string> {
  const d = last.details ?? {};
  const perClass = {
    linear: numbers(record(d.linear)?.perClassAccuracy),
    fewShot: numbers(record(d.fewShot)?.perClassAccuracy),
    knn: numbers(record(d.knn)?.perClassAccuracy),
  };
  const count = Math.max(perClass.linear.length, perClass.fewShot.length, perClass.knn.length);
  if (count === 0) return "";
  const groups = record(d.groups);
  const groupOf = new Map<number, string>();
  const groupOrder: string[] = [];
  for (const g of Array.isArray(groups?.classes) ? groups.classes : []) {
    const group = record(g);
    groupOrder.push(String(group?.name));
    for (const k of Array.isArray(group?.classes) ? group.classes : []) {
      groupOf.set(k as number, String(group!.name));
    }
  }
  const names = classNames(log, count);
  const main = perClass.linear.length > 0 ? perClass.linear : perClass.knn;
  const chart = await barChartSvg({
    title: `per-class ${
      perClass.linear.length > 0 ? "linear" : "kNN"
    } accuracy, epoch ${last.epoch}`,
    xTitle: "class",
    yTitle: "test accuracy (%)",
    yDomain: [0, 100],
    groupOrder,
    bars: main.map((v, k) => ({
      label: names[k],
      value: v === null ? 0 : 100 * v,
      ...(groupOf.size > 0 ? { group: groupOf.get(k) ?? "" } : {}),
    })),
  });
  const rows = Array.from({ length: count }, (_, k) => [
    String(k),
    names[k],
    groupOf.get(k) ?? "",
    pct(perClass.linear[k] ?? null),
    pct(perClass.fewShot[k] ?? null),
    pct(perClass.knn[k] ?? null),
  ]);
  let body = `<div class="plot">${chart}</div>\n` +
    table(["class", "name", "group", "linear %", "few-shot %", "kNN %"], rows, "numbers");
  const reports = (["linear", "fewShot"] as const).flatMap((probe) => {
    const report = record(groups?.[probe]);
    return report ? [{ probe, report }] : [];
  });
  if (reports.length > 0) {
    const listOf = (report: Json) =>
      (Array.isArray(report.groups) ? report.groups : []).map(record);
    const names = listOf(reports[0].report).map((g) => String(g?.name));
    const rows = reports.map(({ probe, report }) => [
      probe === "linear" ? "linear" : "few-shot",
      ...names.map((name) => pct(num(listOf(report).find((g) => g?.name === name)?.accuracy))),
      fixed(num(report.balancedness)),
    ]);
    body += "\n<h3>Class groups</h3>\n" +
      table(["probe", ...names.map((n) => `${n} %`), "balancedness"], rows, "numbers") +
      `<p>${escapeHtml(groupSource(log))}; balancedness = population std ` +
      "of the group accuracies (as a fraction).</p>";
  }
  return section(`Last evaluation (epoch ${last.epoch})`, body);
}

/** Where the class groups come from: the counts of evaluation.groups.reference_split, by rule. */
export function groupSource(log: LogRecord): string {
  const groups = record(record(log.resolved_config)?.evaluation)?.groups;
  const rule = record(groups);
  const reference = typeof rule?.reference_split === "string" ? rule.reference_split : null;
  if (reference === null) return "Groups from the class counts of the reference split";
  const pretrain = record(record(log.resolved_config)?.data)?.pretrain_split;
  const same = pretrain === reference ? ", the pretraining split" : "";
  const how = rule!.by === "rank"
    ? `classes ranked by their count, groups of ${JSON.stringify(rule!.sizes)} classes`
    : `more than ${rule!.many_above} images many, fewer than ${rule!.few_below} few`;
  return `Groups from the class counts of ${reference}${same} (evaluation.groups: ${how})`;
}

const METRIC_LABELS: Record<string, string> = {
  linear: "linear probe",
  few_shot: "few-shot probe; no linear probe configured",
  knn: "kNN; no linear or few-shot probe configured",
};

/** What the headline score of a log's evaluations is, as " (kNN; ...)" (empty for older logs). */
function scoreLabel(log: LogRecord): string {
  const metric = log.evaluations?.at(-1)?.metric;
  return typeof metric === "string" && METRIC_LABELS[metric] ? ` (${METRIC_LABELS[metric]})` : "";
}

function summaryTable(log: LogRecord, evals: EvalPoint[]): string {
  const configured = num(record(record(log.resolved_config)?.train)?.epochs) ??
    num(record(record(log.config)?.pretraining)?.max_epochs);
  const losses = log.average_training_loss_per_epoch;
  const last = evals.at(-1);
  const rows: string[][] = [
    ["experiment", log.experiment],
    ["status", log.status ?? "finished (original ETH log)"],
    ["config format", log.config_format ?? "eth (original log)"],
    ["epochs", `${losses.length}${configured !== null ? ` of ${configured}` : ""}`],
    ["final training loss", fixed(losses.at(-1) ?? null)],
    [
      `last test accuracy (%)${scoreLabel(log)}`,
      last ? `${pct(last.score)} (epoch ${last.epoch})` : "—",
    ],
  ];
  const baseline = evals[0]?.epoch === 0 ? evals[0] : null;
  if (baseline) {
    const gain = last && last !== baseline && last.score !== null && baseline.score !== null
      ? `; pretrained − random: ${(100 * (last.score - baseline.score)).toFixed(2)} points`
      : "";
    rows.push(["random-init test accuracy (%)", `${pct(baseline.score)}${gain}`]);
  }
  if (log.wall_time_seconds !== undefined) {
    rows.push(["wall time", `${(log.wall_time_seconds / 60).toFixed(1)} min`]);
  }
  if (log.overrides && log.overrides.length > 0) rows.push(["overrides", log.overrides.join(" ")]);
  return table(["", ""], rows, "summary");
}

function epochTable(log: LogRecord): string {
  const losses = log.average_training_loss_per_epoch;
  const mu = numbers(log.mu_per_epoch);
  const lr = numbers(log.lr_per_epoch);
  const speed = numbers(log.views_per_second_per_epoch);
  const seconds = numbers(log.seconds_per_epoch);
  const rows = losses.map((loss, i) => [
    String(i + 1),
    fixed(loss),
    fixed(mu[i] ?? null),
    lr[i] === undefined || lr[i] === null ? "—" : lr[i]!.toExponential(3),
    fixed(speed[i] ?? null, 1),
    fixed(seconds[i] ?? null, 1),
  ]);
  return `<details><summary>every epoch (${losses.length})</summary>${
    table(["epoch", "loss", "μ", "lr", "views/s", "seconds"], rows, "numbers")
  }</details>`;
}

function configSection(log: LogRecord): string {
  const blocks: string[] = [];
  if (log.resolved_config) {
    blocks.push(
      `<h3>Resolved config</h3><pre>${escapeHtml(stringify(log.resolved_config))}</pre>`,
    );
  }
  if (!log.resolved_config || log.config_format === "eth") {
    blocks.push(
      `<h3>${log.resolved_config ? "ETH config as given" : "Config (ETH format)"}</h3>` +
        `<pre>${escapeHtml(stringify(log.config))}</pre>`,
    );
  }
  return section("Config", blocks.join("\n"));
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plot { overflow-x: auto; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
`;

/** The data provenance of a run: what its training set is, fingerprints, file checksums. */
function dataTable(data: DataProvenance): string {
  const rows: string[][] = [
    ["data set", data.known ?? "unknown (see the fingerprints)"],
    ["folder", data.dir],
  ];
  for (const set of ["full", "pretrain", "train", "test"] as const) {
    const f = data[set];
    if (f) rows.push([`${set} fingerprint`, `${f.sha256} (${f.count} images)`]);
  }
  for (const [name, sum] of Object.entries(data.files ?? {})) rows.push([`sha256 ${name}`, sum]);
  return table(["", ""], rows, "summary");
}

/** The report of a log as one self-contained HTML page. */
export async function renderReport(log: LogRecord): Promise<string> {
  const evals = evaluationPoints(log);
  const plots = (await curves(log, evals)).map((svg) => `<div class="plot">${svg}</div>`);
  const parts = [
    section("Summary", summaryTable(log, evals)),
    section("Curves", `<div class="plots">\n${plots.join("\n")}\n</div>\n${epochTable(log)}`),
  ];
  if (evals.length > 0) parts.push(section("Evaluations", evaluationsTable(evals)));
  const last = evals.at(-1);
  if (last?.details) parts.push(await lastEvaluationSection(log, last));
  parts.push(await diagnosticsSection(log, epochAxisOf(log, evals)));
  parts.push(configSection(log));
  if (log.data) parts.push(section("Data", dataTable(log.data)));
  if (log.environment) {
    parts.push(section(
      "Environment",
      table(
        ["", ""],
        Object.entries(log.environment).map((
          [k, v],
        ) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
        "summary",
      ),
    ));
  }
  const title = `${log.experiment}: experiment report`;
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    `<head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>`,
    "<body>",
    `<h1>${escapeHtml(title)}</h1>`,
    ...parts.filter((p) => p !== ""),
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
