/**
 * The summary over seeds and splits (SDCLR's `exp_analyse.py`, for every
 * method): runs are grouped by method/config, each group gets mean ± std of
 * its final metrics, and groups whose config matches a paper setting are
 * compared with the reported value, or marked "not comparable" with the
 * protocol differences named (src/report/paper.ts).
 *
 * Grouping: ours by the resolved config without `experiment`, `seed`,
 * `device`, `output` and `data.dir`, with `split<k>` in every string
 * (split file paths) replaced by `split*`; so the five `split{k}_D_i` runs of
 * one method form one group while `D_i` and `D_b` stay apart. Original ETH
 * logs are grouped by experiment name. The std is the population standard
 * deviation (ddof 0), as `np.std` in `exp_analyse.py`.
 */
import { mean, populationStd } from "../eval/metrics.ts";
import {
  type ConfigSignature,
  configSignature,
  formatProtocolDifferences,
  matchPaper,
  nearestPaper,
  type PaperMetric,
  type ProtocolDifference,
  protocolDifferences,
  type ProtocolSignature,
  protocolSignature,
  type RunImageCounts,
  type SignatureDifference,
} from "./paper.ts";
import type { RunLog } from "./read.ts";

/** The metrics of a run, in the order of the table. */
export const METRICS = [
  "linear",
  "fewShot",
  "many",
  "medium",
  "few",
  "balancedness",
  "knn",
  "finalLoss",
] as const;
/** One metric. */
export type MetricName = (typeof METRICS)[number];

/** Units of the metrics: accuracies in percent, balancedness as a fraction (as exp_analyse.py). */
export const METRIC_UNITS: Readonly<Record<MetricName, string>> = {
  linear: "% test accuracy of the linear probe, last evaluation",
  fewShot: "% test accuracy of the few-shot probe, last evaluation",
  many: "% linear accuracy over the many-shot classes",
  medium: "% linear accuracy over the medium-shot classes",
  few: "% linear accuracy over the few-shot classes",
  balancedness: "population std of the many/medium/few linear accuracies, as a fraction",
  knn: "% kNN test accuracy, last evaluation",
  finalLoss: "average training loss of the last epoch",
};

const HEADERS: Readonly<Record<MetricName, string>> = {
  linear: "linear %",
  fewShot: "few-shot %",
  many: "many %",
  medium: "medium %",
  few: "few %",
  balancedness: "balancedness",
  knn: "kNN %",
  finalLoss: "final loss",
};

/** A run's final metrics (null: not measured). */
export type RunMetrics = Record<MetricName, number | null>;

/** Mean ± population std of a metric over the runs of a group that report it. */
export interface MetricStat {
  mean: number;
  std: number;
  /** Runs that report the metric. */
  n: number;
  values: number[];
}

/** One run of a group. */
export interface RunSummary {
  path: string;
  experiment: string;
  seed: number;
  /** The split number (`split<k>` in the name or the pretraining split), else null. */
  split: number | null;
  status: string;
  metrics: RunMetrics;
}

/** A paper value a group is compared with. */
export interface PaperComparison {
  entry: string;
  source: string;
  metric: PaperMetric;
  /** The group's mean, in percent (its runs: ours, or the original ETH logs). */
  ours: number;
  oursStd: number;
  paper: number;
  /** Whether the runs were measured as the paper measured (see `protocolDifferences`). */
  comparable: boolean;
  /** Where the runs' protocol differs from the paper's (empty when comparable). */
  protocolDifferences: ProtocolDifference[];
  /** ours − paper in percentage points; null when not comparable. */
  difference: number | null;
}

/** One method/config and its runs. */
export interface GroupSummary {
  /** The grouping key (canonical config JSON, or `eth-original:<experiment>`). */
  key: string;
  /** What the table calls it: the experiment names without their split number. */
  label: string;
  source: RunLog["source"];
  signature: ConfigSignature;
  /** How the group's runs were measured (its first run's config and log, the number of runs). */
  protocol: ProtocolSignature;
  runs: RunSummary[];
  stats: Record<MetricName, MetricStat | null>;
  paper: PaperComparison[];
  /**
   * When no paper entry matches: the nearest one (≤ 2 setting fields apart), how its setting
   * differs, and how the runs were measured differently from it.
   */
  nearest: {
    entry: string;
    differences: SignatureDifference[];
    protocolDifferences: ProtocolDifference[];
  } | null;
}

/** The result of {@link analyseRuns}. */
export interface Analysis {
  /** How ± is computed. */
  std: string;
  units: Readonly<Record<MetricName, string>>;
  groups: GroupSummary[];
  /** Runs left out because they did not finish. */
  skipped: { path: string; status: string }[];
}

/** Options of {@link analyseRuns}. */
export interface AnalyseOptions {
  /** Include runs whose status is not `finished` (default false). */
  includeUnfinished?: boolean;
}

const STD_NOTE = "population standard deviation over the runs of a group (ddof 0, as np.std in " +
  "SDCLR's exp_analyse.py)";

function record(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : null;
}

function finiteOrNull(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

function percent(value: number | null): number | null {
  return value === null ? null : 100 * value;
}

/** The final metrics of a run: its last evaluation, its last epoch's loss. */
export function runMetrics(run: RunLog): RunMetrics {
  const { log } = run;
  const losses = log.average_training_loss_per_epoch;
  const finalLoss = losses.length > 0 ? losses[losses.length - 1] : null;
  const last = log.evaluations?.at(-1);
  if (run.source === "eth-original" || log.evaluations === undefined) {
    const score = log.model_scores.at(-1) ?? null;
    return {
      linear: percent(score),
      fewShot: null,
      many: null,
      medium: null,
      few: null,
      balancedness: null,
      knn: null,
      finalLoss,
    };
  }
  const details = record(last?.details) ?? {};
  const groups = record(record(details.groups)?.linear);
  const groupList = Array.isArray(groups?.groups) ? groups.groups as unknown[] : [];
  const groupAccuracy = (name: string): number | null => {
    const group = groupList.map(record).find((g) => g?.name === name);
    return percent(finiteOrNull(group?.accuracy));
  };
  return {
    linear: percent(finiteOrNull(record(details.linear)?.testAccuracy)),
    fewShot: percent(finiteOrNull(record(details.fewShot)?.testAccuracy)),
    many: groupAccuracy("many"),
    medium: groupAccuracy("medium"),
    few: groupAccuracy("few"),
    balancedness: finiteOrNull(groups?.balancedness),
    knn: percent(finiteOrNull(record(details.knn)?.accuracy)),
    finalLoss,
  };
}

/** An experiment name without its split number: `sdclr_cifar10_split3_D_i` → `sdclr_cifar10_D_i`. */
export function withoutSplit(name: string): string {
  return name.replace(/_split\d+(?=_|$)/, "").replace(/^split\d+_/, "");
}

/** The split number of a run, from its name or its pretraining split file. */
export function splitNumber(run: RunLog): number | null {
  const found = /split(\d+)/.exec(run.log.experiment) ??
    /split(\d+)/.exec(run.config.data?.pretrain_split ?? "");
  return found ? Number(found[1]) : null;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "string") return value.replace(/split\d+/g, "split*");
  const object = record(value);
  if (!object) return value;
  return Object.fromEntries(
    Object.keys(object).sort().map((key) => [key, canonical(object[key])]),
  );
}

/** The key runs are grouped by (see the module comment). */
export function groupKey(run: RunLog): string {
  if (run.source === "eth-original") return `eth-original:${run.log.experiment}`;
  const config = structuredClone(run.config) as unknown as Record<string, unknown>;
  for (const key of ["experiment", "seed", "device", "output"]) delete config[key];
  const data = record(config.data);
  if (data) delete data.dir;
  return JSON.stringify(canonical(config));
}

function metricStat(values: (number | null)[]): MetricStat | null {
  const present = values.filter((v): v is number => v !== null);
  if (present.length === 0) return null;
  return { mean: mean(present), std: populationStd(present), n: present.length, values: present };
}

/** Image counts a run's log states: pretraining (ours: `data_counts`), the linear probe's train and test. */
export function runImageCounts(run: RunLog): RunImageCounts {
  const pretrain = record((run.log as Record<string, unknown>).data_counts)?.pretrain;
  const linear = record(record(run.log.evaluations?.at(-1)?.details)?.linear);
  const counts = record(linear?.counts);
  const train = finiteOrNull(counts?.train);
  const val = finiteOrNull(counts?.val);
  return {
    pretrain: finiteOrNull(pretrain),
    // The ETH protocol splits its validation part off the training images.
    probeTrain: train === null ? null : linear?.protocol === "eth" ? train + (val ?? 0) : train,
    test: finiteOrNull(counts?.test),
  };
}

function compareWithPaper(
  signature: ConfigSignature,
  protocol: ProtocolSignature,
  source: RunLog["source"],
  stats: GroupSummary["stats"],
) {
  const comparisons: PaperComparison[] = [];
  for (const entry of matchPaper(signature)) {
    // The original ETH logs are the paper's own runs: their data is the paper's.
    const measured = source === "eth-original"
      ? {
        ...protocol,
        pretrain_images: entry.protocol.pretrain_images,
        probe_train_images: entry.protocol.probe_train_images,
        test_images: entry.protocol.test_images,
      }
      : protocol;
    const differences = protocolDifferences(measured, entry.protocol);
    for (const [metric, paper] of Object.entries(entry.values) as [PaperMetric, number][]) {
      const stat = stats[metric];
      if (!stat) continue;
      comparisons.push({
        entry: entry.label,
        source: entry.source,
        metric,
        ours: stat.mean,
        oursStd: stat.std,
        paper,
        comparable: differences.length === 0,
        protocolDifferences: differences,
        difference: differences.length === 0 ? stat.mean - paper : null,
      });
    }
  }
  return comparisons;
}

/** Groups the runs, computes mean ± std per group and compares with the papers. */
export function analyseRuns(runs: readonly RunLog[], options: AnalyseOptions = {}): Analysis {
  const skipped: Analysis["skipped"] = [];
  const byKey = new Map<string, RunLog[]>();
  for (const run of runs) {
    const status = run.log.status ?? "finished";
    if (status !== "finished" && !options.includeUnfinished) {
      skipped.push({ path: run.path, status });
      continue;
    }
    const key = groupKey(run);
    byKey.set(key, [...(byKey.get(key) ?? []), run]);
  }
  const groups: GroupSummary[] = [...byKey.entries()].map(([key, members]) => {
    const first = members[0];
    const label = first.source === "eth-original"
      ? `${first.log.experiment} (ETH original)`
      : [...new Set(members.map((r) => withoutSplit(r.log.experiment)))].join(", ");
    const summaries: RunSummary[] = members.map((run) => ({
      path: run.path,
      experiment: run.log.experiment,
      seed: run.config.seed,
      split: splitNumber(run),
      status: run.log.status ?? "finished",
      metrics: runMetrics(run),
    })).sort((a, b) => (a.split ?? 0) - (b.split ?? 0) || a.seed - b.seed);
    const stats = Object.fromEntries(
      METRICS.map((m) => [m, metricStat(summaries.map((s) => s.metrics[m]))]),
    ) as GroupSummary["stats"];
    const signature = configSignature(first.config);
    const protocol = protocolSignature(first.config, runImageCounts(first), members.length);
    const paper = compareWithPaper(signature, protocol, first.source, stats);
    const near = paper.length === 0 ? nearestPaper(signature) : null;
    return {
      key,
      label,
      source: first.source,
      signature,
      protocol,
      runs: summaries,
      stats,
      paper,
      nearest: near && {
        entry: near.entry.label,
        differences: near.differences,
        protocolDifferences: protocolDifferences(protocol, near.entry.protocol),
      },
    };
  });
  const collator = new Intl.Collator("en", { numeric: true });
  groups.sort((a, b) => collator.compare(a.label, b.label));
  // Two configs can share a name (an override on one run): number them apart.
  const seen = new Map<string, number>();
  for (const group of groups) {
    const count = (seen.get(group.label) ?? 0) + 1;
    seen.set(group.label, count);
    if (count > 1) group.label = `${group.label} #${count}`;
  }
  return { std: STD_NOTE, units: METRIC_UNITS, groups, skipped };
}

/** Decimals shown per metric (exp_analyse.py: accuracies 2, balancedness 4). */
function decimals(metric: MetricName): number {
  return metric === "balancedness" || metric === "finalLoss" ? 4 : 2;
}

/** `mean ± std` (runs > 1), `mean` (one run), `—` (none); `(k/n)` when only k of n runs report it. */
export function formatStat(stat: MetricStat | null, metric: MetricName, runs: number): string {
  if (!stat) return "—";
  const d = decimals(metric);
  let text = stat.mean.toFixed(d);
  if (runs > 1) text += ` ± ${stat.std.toFixed(d)}`;
  if (stat.n < runs) text += ` (${stat.n}/${runs})`;
  return text;
}

/** `+1.23` / `-1.23`; a difference that rounds to zero is `+0.00`. */
export function signed(value: number): string {
  const magnitude = Math.abs(value).toFixed(2);
  return `${value < 0 && Number(magnitude) !== 0 ? "-" : "+"}${magnitude}`;
}

/** Left-aligned first column, right-aligned others, two spaces apart. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("  ").trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** The analysis as text: the summary table, the paper comparison, notes. */
export function formatAnalysis(analysis: Analysis): string {
  const { groups } = analysis;
  if (groups.length === 0) {
    return analysis.skipped.length > 0
      ? `no finished runs (${analysis.skipped.length} unfinished; --all includes them)`
      : "no runs";
  }
  const shown = METRICS.filter((m) => groups.some((g) => g.stats[m] !== null));
  const summary = textTable(
    ["method / config", "runs", ...shown.map((m) => HEADERS[m])],
    groups.map((g) => [
      g.label,
      String(g.runs.length),
      ...shown.map((m) => formatStat(g.stats[m], m, g.runs.length)),
    ]),
  );
  const out = [summary, "", `± : ${analysis.std}; accuracies in %, balancedness as a fraction.`];

  const compared = groups.filter((g) => g.paper.length > 0);
  if (compared.length > 0) {
    out.push(
      "",
      "Comparison with the papers (matching setting and protocol: see src/report/paper.ts):",
    );
    out.push(textTable(
      ["method / config", "runs of", "metric", "mean", "paper", "mean − paper", "paper setting"],
      compared.flatMap((g) =>
        g.paper.map((p) => [
          g.label,
          g.source === "eth-original" ? "ETH original log" : "ours",
          p.metric,
          g.runs.length > 1 ? `${p.ours.toFixed(2)} ± ${p.oursStd.toFixed(2)}` : p.ours.toFixed(2),
          p.paper.toFixed(2),
          p.difference === null ? "not comparable" : signed(p.difference),
          p.entry,
        ])
      ),
    ));
    const differing = compared.filter((g) => g.paper.some((p) => !p.comparable));
    if (differing.length > 0) {
      out.push("", "Not comparable: measured differently from the paper in");
      for (const g of differing) {
        const first = g.paper.find((p) => !p.comparable)!;
        out.push(`  ${g.label}: ${formatProtocolDifferences(first.protocolDifferences)}`);
      }
    }
  }
  // The original ETH logs are the papers' own runs: no note on why they match no entry.
  const near = groups.filter((g) => g.nearest !== null && g.source === "ours");
  if (near.length > 0) {
    out.push("", "No paper value for these runs; the nearest paper setting differs in:");
    for (const g of near) {
      const diffs = g.nearest!.differences.map((d) =>
        `${d.field} ${JSON.stringify(d.ours)} (paper ${JSON.stringify(d.paper)})`
      );
      const measured = g.nearest!.protocolDifferences.length > 0
        ? `; measured differently: ${formatProtocolDifferences(g.nearest!.protocolDifferences)}`
        : "";
      out.push(`  ${g.label}: "${g.nearest!.entry}": ${diffs.join(", ")}${measured}`);
    }
  }
  if (analysis.skipped.length > 0) {
    out.push(
      "",
      `Left out ${analysis.skipped.length} unfinished run(s) (--all includes them): ` +
        analysis.skipped.map((s) => `${s.path} (${s.status})`).join(", "),
    );
  }
  return out.join("\n");
}
