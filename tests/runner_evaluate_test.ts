/**
 * When the runner evaluates: every `testing_every_n_epochs`, and at the end
 * (always for our `evaluate_at_end: true`; for ETH configs only when a run
 * shortened by `--epochs` would otherwise have no score, as SPEC says).
 */
import { assertEquals, assertThrowsMessage } from "./assert.ts";
import { loadConfig } from "../src/config/mod.ts";
import { evaluationEpochs } from "../src/train/evaluate.ts";

/** The epochs (1-based) after which a run of `epochs` epochs evaluates. */
async function evaluatedAfter(path: string, epochs: number, set: string[] = []) {
  const { config } = await loadConfig(path, { epochs, set });
  return evaluationEpochs(config).map((e) => e + 1);
}

Deno.test("ETH config: scored every 100 epochs; a shortened run gets one score at its end", async () => {
  const eth = "config/eth/experiment_5.yaml";
  assertEquals(await evaluatedAfter(eth, 500), [100, 200, 300, 400, 500]);
  assertEquals(await evaluatedAfter(eth, 3), [3], "no testing epoch reached: scored at the end");
  assertEquals(await evaluatedAfter(eth, 150), [100], "scored at 100: no extra end score");
});

Deno.test("our format: evaluate_at_end true adds the last epoch, false does not", async () => {
  const ours = "config/quickstart.yaml";
  assertEquals(await evaluatedAfter(ours, 20), [5, 10, 15, 20]);
  assertEquals(await evaluatedAfter(ours, 12), [5, 10, 12]);
  assertEquals(await evaluatedAfter(ours, 12, ["evaluation.evaluate_at_end=false"]), [5, 10]);
  assertEquals(await evaluatedAfter(ours, 3, ["evaluation.evaluate_at_end=if_none"]), [3]);
  assertEquals(await evaluatedAfter(ours, 12, ["evaluation.evaluate_at_end=if_none"]), [5, 10]);
  assertEquals(await evaluatedAfter(ours, 12, ["evaluation.linear=null"]), [5, 10, 12], "kNN");
  const nothing = ["evaluation.linear=null", "evaluation.knn=null"];
  assertEquals(
    await evaluatedAfter(ours, 12, [
      ...nothing,
      "evaluation.random_init_baseline=false",
      "evaluation.testing_every_n_epochs=null",
    ]),
    [],
    "nothing to evaluate",
  );
  // Asking for a baseline or a period with nothing to evaluate is refused, not ignored.
  await assertThrowsMessage(
    () => evaluatedAfter(ours, 12, nothing),
    "evaluation.random_init_baseline: needs something to evaluate",
    "evaluation.testing_every_n_epochs: needs something to evaluate",
  );
});
