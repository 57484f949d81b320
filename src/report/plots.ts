/**
 * Static SVG charts from Vega-Lite specs, rendered headless (no DOM, no
 * canvas: Vega's `renderer: "none"` view and its `toSVG`), for inlining in
 * the HTML report.
 */
import * as vega from "vega";
import type { TopLevelSpec } from "vega-lite";
import { compile } from "vega-lite";

/** One named line of a chart. */
export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

/** A line chart. */
export interface LineChart {
  title: string;
  xTitle: string;
  yTitle: string;
  series: Series[];
  /** Default `linear`. */
  yScale?: "linear" | "log";
  /** Fixed y range (e.g. [0, 100] for percentages); default from the data. */
  yDomain?: [number, number];
  /** Fixed x range (e.g. [0, epochs]); default from the data. */
  xDomain?: [number, number];
  /** x takes integer values (epochs): integer tick labels. */
  xIntegers?: boolean;
}

/** One bar of a bar chart. */
export interface Bar {
  label: string;
  value: number;
  /** Colour group (e.g. many/medium/few). */
  group?: string;
}

/** A bar chart with one bar per label, in the given order. */
export interface BarChart {
  title: string;
  xTitle: string;
  yTitle: string;
  bars: Bar[];
  yDomain?: [number, number];
  /** Order of the colour groups in the legend (default: order of appearance). */
  groupOrder?: string[];
}

const WIDTH = 520;
const HEIGHT = 220;
/** Series with more points than this are drawn without point markers. */
const MAX_MARKED_POINTS = 60;

let svgCounter = 0;

/**
 * Makes the `id`s of an SVG unique in a page holding several (Vega numbers
 * its clip paths and gradients from 1 in every view).
 */
function uniqueIds(svg: string): string {
  const prefix = `chart${++svgCounter}-`;
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id) => `id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id) => `url(#${prefix}${id})`)
    .replace(/href="#([^"]+)"/g, (_, id) => `href="#${prefix}${id}"`);
}

/** Renders a Vega-Lite spec to an SVG string. */
export async function renderVegaLite(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return uniqueIds(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/** Renders a line chart (one coloured line per series, legend when several). */
export function lineChartSvg(chart: LineChart): Promise<string> {
  const values = chart.series.flatMap((s) =>
    s.points.filter((p) => Number.isFinite(p.y)).map((p) => ({ series: s.name, x: p.x, y: p.y }))
  );
  const longest = Math.max(0, ...chart.series.map((s) => s.points.length));
  const spec: TopLevelSpec = {
    width: WIDTH,
    height: HEIGHT,
    title: chart.title,
    data: { values },
    mark: { type: "line", point: longest <= MAX_MARKED_POINTS, strokeWidth: 1.5 },
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        title: chart.xTitle,
        scale: { zero: false, ...(chart.xDomain ? { domain: chart.xDomain } : {}) },
        ...(chart.xIntegers ? { axis: { format: "d", tickMinStep: 1 } } : {}),
      },
      y: {
        field: "y",
        type: "quantitative",
        title: chart.yTitle,
        scale: {
          type: chart.yScale ?? "linear",
          zero: false,
          ...(chart.yDomain ? { domain: chart.yDomain } : {}),
        },
      },
      color: {
        field: "series",
        type: "nominal",
        title: null,
        sort: chart.series.map((s) => s.name),
        legend: chart.series.length > 1 ? { orient: "bottom" } : null,
      },
    },
  };
  return renderVegaLite(spec);
}

/** Renders a bar chart. */
export function barChartSvg(chart: BarChart): Promise<string> {
  const groups = [
    ...new Set([
      ...(chart.groupOrder ?? []),
      ...chart.bars.flatMap((b) => (b.group === undefined ? [] : [b.group])),
    ]),
  ];
  const spec: TopLevelSpec = {
    width: Math.max(WIDTH, 14 * chart.bars.length),
    height: HEIGHT,
    title: chart.title,
    data: {
      values: chart.bars.map((b) => ({ label: b.label, value: b.value, group: b.group ?? "" })),
    },
    mark: { type: "bar" },
    encoding: {
      x: {
        field: "label",
        type: "nominal",
        title: chart.xTitle,
        sort: chart.bars.map((b) => b.label),
      },
      y: {
        field: "value",
        type: "quantitative",
        title: chart.yTitle,
        ...(chart.yDomain ? { scale: { domain: chart.yDomain } } : {}),
      },
      ...(groups.length > 0
        ? {
          color: {
            field: "group",
            type: "nominal",
            title: "group",
            scale: { domain: groups },
            legend: { orient: "bottom" },
          },
        }
        : {}),
    },
  };
  return renderVegaLite(spec);
}
