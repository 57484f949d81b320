/** The progress bar's line: counts, bar, and fields (counts as integers, rates rounded). */
import { assert, assertEquals } from "./assert.ts";
import { ProgressBar } from "../src/util/progress.ts";

Deno.test("progress bar: done/total, filled bar, and readable field values", () => {
  const bar = new ProgressBar("epoch 1/3", 8, 8);
  bar.tick(2);
  const line = bar.render({ loss: 4.54521, mu: -0.25, lr: 0.001, "views/s": 83, wd: 1e-6 });
  assert(line.startsWith("epoch 1/3 ██░░░░░░ 2/8 "), line);
  assert(
    line.endsWith("loss 4.5452  mu -0.2500  lr 0.0010  views/s 83  wd 1.00e-6"),
    line,
  );
  assertEquals(bar.render({ "views/s": 1234.6 }).split(" ").at(-1), "1235");
  assert(/ \d\d:\d\d<\d\d:\d\d /.test(line), `elapsed<ETA: ${line}`);
});
