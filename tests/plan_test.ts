import { assert, assertClose, assertEquals } from "./assert.ts";
import { loadConfig } from "../src/config/mod.ts";
import { iterationsPerEpoch, muRng, planEpochs } from "../src/schedules/from_config.ts";
import { main } from "../mod.ts";

async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    const code = await fn();
    return { code, out: lines.join("\n") };
  } finally {
    console.log = original;
  }
}

Deno.test("every ETH config plans without error", async () => {
  let count = 0;
  for await (const entry of Deno.readDir("config/eth")) {
    if (!entry.name.endsWith(".yaml")) continue;
    const { config } = await loadConfig(`config/eth/${entry.name}`);
    const plan = planEpochs(
      config,
      iterationsPerEpoch(50_000, config.train.batch_size, config.train.drop_last),
      muRng(config.seed),
    );
    assertEquals(plan.length, config.train.epochs, entry.name);
    assert(plan.every((e) => Number.isFinite(e.lr)), entry.name);
    count++;
  }
  assertEquals(count, 60);
});

Deno.test("plan --json follows the schedule definitions", async () => {
  const { code, out } = await captureStdout(() =>
    main(["plan", "config/eth/experiment_1.yaml", "--json"])
  );
  assertEquals(code, 0);
  const plan = JSON.parse(out);
  assertEquals(plan.experiment, "experiment_1");
  assertEquals(
    plan.iterations_per_epoch,
    196,
    "50,000 images at batch 256, last partial batch kept",
  );
  assertEquals(plan.epochs.length, 500);
  assert(
    plan.epochs.every((e: { mu: null; lr: number }) => e.mu === null && e.lr === 1e-3),
    "NT-Xent: no μ, Adam lr 1e-3",
  );
  assertEquals(
    plan.epochs.flatMap((e: { epoch: number; evaluate: boolean }) => e.evaluate ? [e.epoch] : []),
    [99, 199, 299, 399, 499],
    "scored every 100 epochs",
  );

  // A linear μ from −1 to 1 over 500 epoch ends: μ_e = −1 + 2e/500.
  const linear = await captureStdout(() =>
    main([
      "plan",
      "config/eth/experiment_1.yaml",
      "--json",
      "--set",
      "loss={type: weighted_ntxent, temperature: 0.1, sigma: 0.5, mean: {type: linear, begin: -1, end: 1, steps: 500}}",
    ])
  );
  assertEquals(linear.code, 0);
  const epochs = JSON.parse(linear.out).epochs as { epoch: number; mu: number }[];
  for (const e of epochs) {
    assertClose(e.mu, -1 + (2 * e.epoch) / 500, 1e-12, 1e-12, `epoch ${e.epoch}`);
  }
});

Deno.test("RandomThenConst: random μ in (begin, end], then const_value; a rerun gives the same draws", async () => {
  const { config } = await loadConfig("config/eth/experiment_25.yaml");
  const a = planEpochs(config, 196, muRng(config.seed));
  const b = planEpochs(config, 196, muRng(config.seed));
  assertEquals(a, b);
  const random = a.slice(0, 200).map((e) => e.mu!);
  assert(random.every((m) => m > -1 && m <= 1), "draws within (−1, 1]");
  assert(new Set(random).size === 200, "a new draw every epoch");
  assert(a.slice(201).every((e) => e.mu === 0.8), "const_value 0.8 after the random phase");
});

Deno.test("plan counts the images in data.dir (the quickstart's 2,000) and says when it assumes", async () => {
  const quick = await captureStdout(() => main(["plan", "config/quickstart.yaml", "--json"]));
  assertEquals(quick.code, 0);
  const plan = JSON.parse(quick.out);
  assertEquals([plan.pretrain_images, plan.pretrain_images_assumed], [2000, null]);
  assertEquals(plan.iterations_per_epoch, 16, "2,000 images at batch 128, last partial kept");
  const missing = await captureStdout(() =>
    main(["plan", "config/quickstart.yaml", "--data-dir", "no/such/dir"])
  );
  assertEquals(missing.code, 0);
  assert(
    missing.out.includes(
      "(50000 images assumed, the official size: no cifar10 training files in no/such/dir; batch 128)",
    ),
    missing.out,
  );
});

Deno.test("plan on a bad config names the key and exits non-zero", async () => {
  const dir = await Deno.makeTempDir();
  const text = (await Deno.readTextFile("config/eth/experiment_1.yaml")).replace(
    /temperature: [0-9.]+/,
    "temperature: abc",
  );
  await Deno.writeTextFile(`${dir}/bad.yaml`, text);
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.map(String).join(" "));
  try {
    const code = await main(["plan", `${dir}/bad.yaml`]);
    assert(code !== 0, "exit code");
  } finally {
    console.error = original;
    await Deno.remove(dir, { recursive: true });
  }
  assert(
    errors.length === 1 && errors[0].includes("temperature") && errors[0].includes("abc"),
    errors.join("\n"),
  );
});
