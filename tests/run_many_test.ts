/**
 * `run` with several configs (the splits of one setting): each runs in turn and the
 * command ends with their mean ± std, as `analyse` prints it; clashing log names and
 * a bad config are refused before anything trains.
 */
import { assert, assertEquals } from "./assert.ts";
import { encodeInt64Npy } from "../src/data/npy.ts";
import { main } from "../mod.ts";
import { miniCifarIndicesByClass, miniCifarRunFolder } from "./mini_cifar.ts";

const CONFIG = (dir: string, split: number, experiment = `tiny_split${split}`) => `
experiment: ${experiment}
seed: ${split}
device: cpu
data: { dataset: cifar10, dir: ${dir}/data, pretrain_split: split${split}.npy }
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: cifar10 }
head: { type: simclr, output_dim: 16 }
method: { name: simclr }
loss: { type: ntxent, temperature: 0.2 }
optimizer: { type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0001 }
train: { epochs: 1, batch_size: 16, drop_last: false }
augmentation: { recipe: eth }
evaluation: { linear: null, knn: { k: 10, temperature: 0.1 } }
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`;

async function folder(): Promise<string> {
  const dir = await miniCifarRunFolder("run_many_");
  for (const split of [1, 2]) {
    const indices = Array.from({ length: 32 }, (_, i) => 11 * i + split);
    await Deno.writeFile(`${dir}/data/split${split}.npy`, encodeInt64Npy(indices));
    await Deno.writeTextFile(`${dir}/tiny_split${split}.yaml`, CONFIG(dir, split));
  }
  return dir;
}

async function captured(args: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => lines.push(parts.join(" "));
  console.error = () => {};
  try {
    const code = await main(args);
    return { code, out: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("run with a glob of split configs: each runs, then mean ± std over the splits", async () => {
  const dir = await folder();
  try {
    const { code, out } = await captured(["run", `${dir}/tiny_split*.yaml`, "--threads", "1"]);
    assertEquals(code, 0, out);
    assert(out.includes(`== 1/2: ${dir}/tiny_split1.yaml`), out);
    assert(out.includes(`== 2/2: ${dir}/tiny_split2.yaml`), out);
    const knn = [];
    for (const split of [1, 2]) {
      const log = JSON.parse(await Deno.readTextFile(`${dir}/logs/tiny_split${split}.json`));
      assertEquals(log.status, "finished");
      knn.push(100 * log.model_scores[0]);
    }
    const mean = (knn[0] + knn[1]) / 2;
    const std = Math.abs(knn[0] - knn[1]) / 2;
    const row = out.split("\n").find((l) => l.startsWith("tiny "));
    assert(row !== undefined, `a summary row for the split-less name:\n${out}`);
    assert(
      row.includes(`${mean.toFixed(2)} ± ${std.toFixed(2)}`),
      `kNN mean ± std over the splits (${knn.join(", ")}):\n${out}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run with several configs refuses clashing log names and bad configs before training", async () => {
  const dir = await folder();
  try {
    await Deno.writeTextFile(`${dir}/tiny_split2.yaml`, CONFIG(dir, 2, "tiny_split1"));
    const { log, error } = console;
    const errors: string[] = [];
    console.error = (...parts: unknown[]) => errors.push(parts.join(" "));
    console.log = () => {};
    try {
      assertEquals(await main(["run", `${dir}/tiny_split1.yaml`, `${dir}/tiny_split2.yaml`]), 2);
      assert(errors.join("\n").includes("would both write"), errors.join("\n"));
      await Deno.writeTextFile(`${dir}/tiny_split2.yaml`, CONFIG(dir, 2) + "bogus: 1\n");
      errors.length = 0;
      assertEquals(await main(["run", `${dir}/tiny_split1.yaml`, `${dir}/tiny_split2.yaml`]), 1);
      assert(errors.join("\n").includes("bogus"), errors.join("\n"));
    } finally {
      console.log = log;
      console.error = error;
    }
    const logs = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert(!logs.includes("logs"), `nothing trained: ${logs.join(", ")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("balanced pretraining data: no rare-class diagnostics in the log or the report", async () => {
  const dir = await folder();
  try {
    const byClass = await miniCifarIndicesByClass();
    const balanced = byClass.flatMap((indices) => indices.slice(0, 3));
    assertEquals(balanced.length, 30);
    await Deno.writeFile(`${dir}/data/split1.npy`, encodeInt64Npy(balanced));
    const { code, out } = await captured(["run", `${dir}/tiny_split1.yaml`, "--threads", "1"]);
    assertEquals(code, 0, out);
    const log = JSON.parse(await Deno.readTextFile(`${dir}/logs/tiny_split1.json`));
    assertEquals(log.epochs[0].diagnostics, undefined, "every class equally rare");
    const html = await Deno.readTextFile(`${dir}/logs/tiny_split1.html`);
    assert(!html.includes("diagnostics"), "no diagnostics section");

    const skewed = [...balanced, ...byClass[0].slice(3, 13)];
    await Deno.writeFile(`${dir}/data/split1.npy`, encodeInt64Npy(skewed));
    assertEquals((await captured(["run", `${dir}/tiny_split1.yaml`, "--threads", "1"])).code, 0);
    const skewedLog = JSON.parse(await Deno.readTextFile(`${dir}/logs/tiny_split1.json`));
    assertEquals(skewedLog.epochs[0].diagnostics.rareClasses.rareClasses, [1, 2, 3]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
