/**
 * Many/medium/few class groups from the class counts of the pretraining split
 * and balancedness, as SDCLR's `exp_analyse.py` computes them: a group's
 * accuracy is the mean of its classes' accuracies; balancedness is the
 * population standard deviation of the group accuracies.
 */
import { mean, populationStd } from "./metrics.ts";

/**
 * How classes are grouped. `rank`: sort classes by count and take the
 * `sizes[0]` most frequent as the first group (many), the next `sizes[1]`, ...
 * (CIFAR-10: [4, 3, 3]; CIFAR-100: [34, 33, 33]). `count`: many = more than
 * `manyAbove` images, few = fewer than `fewBelow`, medium = the rest
 * (ImageNet-LT: 100 and 20).
 */
export type GroupRule =
  | { by: "rank"; sizes: number[] }
  | { by: "count"; manyAbove: number; fewBelow: number };

/** The `evaluation.groups` section of a config, without its reference split. */
export type GroupsConfigRule =
  | { by: "rank"; sizes: number[] }
  | { by: "count"; many_above: number; few_below: number };

/** One group of classes. */
export interface ClassGroup {
  name: string;
  /** Class indices, in ascending order. */
  classes: number[];
}

/** Group accuracies and balancedness of one per-class accuracy vector. */
export interface GroupReport {
  groups: { name: string; classes: number[]; accuracy: number | null }[];
  /** Population std of the group accuracies; null when a group has no accuracy. */
  balancedness: number | null;
}

/** The rule of a config `evaluation.groups` section. */
export function groupRuleFromConfig(config: GroupsConfigRule): GroupRule {
  return config.by === "rank"
    ? { by: "rank", sizes: [...config.sizes] }
    : { by: "count", manyAbove: config.many_above, fewBelow: config.few_below };
}

function groupNames(count: number): string[] {
  return count === 3
    ? ["many", "medium", "few"]
    : Array.from({ length: count }, (_, i) => `group${i}`);
}

/**
 * Splits the classes by `rule` over `counts` (images per class in the
 * reference split). For `rank`, classes are sorted by ascending count with
 * ties kept in class order (a stable sort), and groups are cut from the top,
 * as `np.argsort` then slicing from the end does in SDCLR.
 */
export function classGroups(counts: readonly number[], rule: GroupRule): ClassGroup[] {
  if (counts.length === 0) {
    throw new Error("classGroups: counts is empty (expected one count per class)");
  }
  counts.forEach((c, k) => {
    if (!(Number.isInteger(c) && c >= 0)) {
      throw new Error(`classGroups: counts[${k}] = ${c}, expected an integer ≥ 0`);
    }
  });
  if (rule.by === "rank") {
    const total = rule.sizes.reduce((a, b) => a + b, 0);
    if (rule.sizes.some((s) => !(Number.isInteger(s) && s > 0)) || total !== counts.length) {
      throw new Error(
        `evaluation.groups.sizes: ${
          JSON.stringify(rule.sizes)
        } must be positive integers summing to ` +
          `the ${counts.length} classes`,
      );
    }
    const ascending = counts.map((_, k) => k).sort((a, b) => counts[a] - counts[b]);
    const names = groupNames(rule.sizes.length);
    let end = ascending.length;
    return rule.sizes.map((size, g) => {
      const classes = ascending.slice(end - size, end).sort((a, b) => a - b);
      end -= size;
      return { name: names[g], classes };
    });
  }
  if (!(rule.fewBelow <= rule.manyAbove + 1)) {
    throw new Error(
      `evaluation.groups: few_below ${rule.fewBelow} must not exceed many_above + 1 (${
        rule.manyAbove + 1
      })`,
    );
  }
  const pick = (test: (c: number) => boolean) =>
    counts.map((c, k) => (test(c) ? k : -1)).filter((k) => k >= 0);
  return [
    { name: "many", classes: pick((c) => c > rule.manyAbove) },
    { name: "medium", classes: pick((c) => c >= rule.fewBelow && c <= rule.manyAbove) },
    { name: "few", classes: pick((c) => c < rule.fewBelow) },
  ];
}

/**
 * Group accuracies (mean of the member classes' accuracies; classes with NaN
 * accuracy are left out; null for a group with none) and balancedness.
 */
export function groupReport(
  perClass: readonly number[],
  groups: readonly ClassGroup[],
): GroupReport {
  const report = groups.map((g) => {
    const values = g.classes.map((k) => {
      if (k >= perClass.length) {
        throw new Error(
          `groupReport: group ${g.name} names class ${k}, but only ${perClass.length} accuracies were given`,
        );
      }
      return perClass[k];
    }).filter((v) => !Number.isNaN(v));
    return {
      name: g.name,
      classes: [...g.classes],
      accuracy: values.length > 0 ? mean(values) : null,
    };
  });
  const accuracies = report.map((g) => g.accuracy);
  const balancedness = accuracies.every((a) => a !== null)
    ? populationStd(accuracies as number[])
    : null;
  return { groups: report, balancedness };
}
