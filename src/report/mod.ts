/**
 * Results of runs: reading experiment logs (ours and the original ETH ones),
 * the summary over seeds and splits with the paper comparison (`analyse`),
 * and the self-contained HTML report of a run with its SVG charts.
 *
 * ```ts
 * const runs = await Promise.all((await findLogFiles(["experiment_logs"])).map(readRunLog));
 * console.log(formatAnalysis(analyseRuns(runs)));
 * await writeReport("experiment_logs/quickstart.html", runs[0].log);
 * ```
 * @module
 */
export {
  type AnalyseOptions,
  analyseRuns,
  type Analysis,
  formatAnalysis,
  formatStat,
  groupKey,
  type GroupSummary,
  METRIC_UNITS,
  type MetricName,
  METRICS,
  type MetricStat,
  type PaperComparison,
  runImageCounts,
  type RunMetrics,
  runMetrics,
  type RunSummary,
  signed,
  splitNumber,
  textTable,
  withoutSplit,
} from "./analyse.ts";
export { escapeHtml, renderReport } from "./html.ts";
export {
  type ConfigSignature,
  configSignature,
  formatProtocolDifferences,
  matchPaper,
  meanScheduleForm,
  nearestPaper,
  PAPER_RESULTS,
  type PaperEntry,
  type PaperMetric,
  type ProtocolDifference,
  protocolDifferences,
  type ProtocolSignature,
  protocolSignature,
  type RunImageCounts,
  type SignatureDifference,
  signatureDifferences,
  splitKind,
} from "./paper.ts";
export {
  type Bar,
  type BarChart,
  barChartSvg,
  type LineChart,
  lineChartSvg,
  renderVegaLite,
  type Series,
} from "./plots.ts";
export { findLogFiles, type LogRecord, parseRunLog, readRunLog, type RunLog } from "./read.ts";
export { writeReport, writeRunOutputs } from "./run_outputs.ts";
