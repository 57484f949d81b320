/** Metrics, many/medium/few groups, balancedness, the stratified split and the weight-decay grid. */
import { assertAllClose, assertClose, assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  accuracy,
  classGroups,
  groupReport,
  groupRuleFromConfig,
  logspace,
  perClassAccuracy,
  populationStd,
  stratifiedSplit,
} from "../src/eval/mod.ts";

Deno.test("metrics: accuracy, per-class accuracy and population std", () => {
  assertEquals(accuracy([0, 1, 2, 2], [0, 1, 1, 2]), 0.75);
  const perClass = perClassAccuracy([0, 1, 2, 2, 0], [0, 1, 1, 2, 0], 4);
  assertEquals(perClass.slice(0, 3), [1, 0.5, 1]);
  assertEquals(Number.isNaN(perClass[3]), true);
  // np.std([1, 2, 3, 4]) = √1.25.
  assertClose(populationStd([1, 2, 3, 4]), Math.sqrt(1.25), 1e-12);
  assertThrowsMessage(() => accuracy([0], [0, 1]), "1 predictions for 2 labels");
});

// CIFAR-10-LT style counts int(5000·0.01^(r/9)) over a shuffled class order.
const ltCounts = [232, 5000, 83, 1077, 50, 2997, 139, 645, 1796, 387];

Deno.test("groups: rank 4/3/3 takes the most frequent classes as many", () => {
  const groups = classGroups(ltCounts, { by: "rank", sizes: [4, 3, 3] });
  assertEquals(groups.map((g) => g.name), ["many", "medium", "few"]);
  assertEquals(groups[0].classes, [1, 3, 5, 8]); // 5000, 1077, 2997, 1796
  assertEquals(groups[1].classes, [0, 7, 9]); // 232, 645, 387
  assertEquals(groups[2].classes, [2, 4, 6]); // 83, 50, 139
  // Ties keep class order in the ascending sort: the later class ranks higher.
  const tied = classGroups([5, 5, 5], { by: "rank", sizes: [1, 1, 1] });
  assertEquals(tied.map((g) => g.classes), [[2], [1], [0]]);
  assertThrowsMessage(
    () => classGroups(ltCounts, { by: "rank", sizes: [4, 3, 2] }),
    "evaluation.groups.sizes",
    "10 classes",
  );
});

Deno.test("groups: count thresholds >100 / 20–100 / <20 (ImageNet-LT)", () => {
  const groups = classGroups(
    [150, 101, 100, 20, 19, 5],
    groupRuleFromConfig({ by: "count", many_above: 100, few_below: 20 }),
  );
  assertEquals(groups.map((g) => g.classes), [[0, 1], [2, 3], [4, 5]]);
});

Deno.test("groups: group accuracy is the mean of class accuracies, balancedness their population std", () => {
  const groups = classGroups(ltCounts, { by: "rank", sizes: [4, 3, 3] });
  const perClass = new Array<number>(10).fill(0);
  [0.8, 0.9, 1.0, 0.9].forEach((a, i) => (perClass[groups[0].classes[i]] = a)); // mean 0.9
  [0.5, 0.6, 0.7].forEach((a, i) => (perClass[groups[1].classes[i]] = a)); // mean 0.6
  [0.3, 0.2, 0.4].forEach((a, i) => (perClass[groups[2].classes[i]] = a)); // mean 0.3
  const report = groupReport(perClass, groups);
  assertAllClose(report.groups.map((g) => g.accuracy!), [0.9, 0.6, 0.3], 1e-12);
  // std of (0.9, 0.6, 0.3) with ddof 0 = √(0.18 / 3) = 0.2449...
  assertClose(report.balancedness!, Math.sqrt(0.06), 1e-12);

  // A class without test samples (NaN) is left out; an empty group gives no balancedness.
  perClass[groups[2].classes[0]] = NaN;
  assertClose(groupReport(perClass, groups).groups[2].accuracy!, 0.3, 1e-12);
  const empty = groupReport([0.5, 0.5], [{ name: "many", classes: [0, 1] }, {
    name: "few",
    classes: [],
  }]);
  assertEquals(empty.groups[1].accuracy, null);
  assertEquals(empty.balancedness, null);
});

Deno.test("stratified split: ceil(10%) held out, every class within one of its share, seeded", () => {
  const sizes = [50, 33, 17, 7, 3, 1];
  const labels = sizes.flatMap((n, k) => new Array<number>(n).fill(k));
  // Interleave (40 is coprime to 111) so classes are not contiguous.
  const mixed = labels.map((_, i) => labels[(i * 40) % labels.length]);
  const n = mixed.length; // 111
  const { train, val } = stratifiedSplit(mixed, 6, 0.1, 42);
  assertEquals(val.length, Math.ceil(0.1 * n));
  assertEquals(train.length + val.length, n);
  assertEquals([...train, ...val].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  sizes.forEach((size, k) => {
    const held = Array.from(val).filter((i) => mixed[i] === k).length;
    const share = (size * val.length) / n;
    if (!(Math.abs(held - share) < 1)) {
      throw new Error(`class ${k}: ${held} held out, share ${share}`);
    }
  });
  assertEquals(stratifiedSplit(mixed, 6, 0.1, 42).val, val);
  const other = stratifiedSplit(mixed, 6, 0.1, 43).val;
  assertEquals(Array.from(other).join() === Array.from(val).join(), false);
  assertThrowsMessage(() => stratifiedSplit(mixed, 6, 1.5, 0), "evaluation.linear.val_fraction");
});

Deno.test("logspace: torch.logspace(−6, −1, 5) and a single step", () => {
  assertAllClose(logspace(-6, -1, 5), [1e-6, 10 ** -4.75, 10 ** -3.5, 10 ** -2.25, 1e-1], 1e-12);
  assertEquals(logspace(-3, 0, 1), [1e-3]);
  assertThrowsMessage(() => logspace(-6, -1, 0), "n_steps");
});
