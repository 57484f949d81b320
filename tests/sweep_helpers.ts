/** Tiny runs on the bundled CIFAR subset and the CLI as a subprocess, for the sweep tests. */
import { encodeInt64Npy } from "../src/data/npy.ts";
import { miniCifarRunFolder } from "./mini_cifar.ts";

/** What varies between the tiny configs of the sweep tests. */
export interface TinyConfig {
  name: string;
  temperature?: number;
  /** data.dir (default: the run folder's data, linked to the bundled subset). */
  dataDir?: string;
  epochs?: number;
  batch?: number;
}

/** A ResNet-18 at 1/16 width, kNN-evaluated at its end, on the folder's `split.npy`. */
export function tinyConfig(dir: string, c: TinyConfig): string {
  return `
experiment: ${c.name}
seed: 0
device: cpu
data: { dataset: cifar10, dir: ${c.dataDir ?? `${dir}/data`}, pretrain_split: split.npy }
model: { architecture: resnet18, stem: cifar, width_multiplier: 0.0625, input_norm: cifar10 }
head: { type: simclr, output_dim: 16 }
method: { name: simclr }
loss: { type: ntxent, temperature: ${c.temperature ?? 0.2} }
optimizer: { type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0001 }
train: { epochs: ${c.epochs ?? 1}, batch_size: ${
    c.batch ?? 16
  }, drop_last: false, checkpoint_every_n_epochs: 1 }
augmentation: { recipe: eth }
evaluation: { linear: null, testing_every_n_epochs: null, evaluate_at_end: true, knn: { k: 10, temperature: 0.1 } }
output: { log_dir: ${dir}/logs, checkpoint_dir: ${dir}/checkpoints }
`;
}

/** A run folder (bundled CIFAR linked, a `split.npy` of `images` images) with `<name>.yaml` configs. */
export async function tinyRunFolder(
  prefix: string,
  images: number,
  configs: (dir: string) => TinyConfig[],
): Promise<string> {
  const dir = await miniCifarRunFolder(prefix);
  await Deno.writeFile(
    `${dir}/data/split.npy`,
    encodeInt64Npy(Array.from({ length: images }, (_, i) => 17 * i)),
  );
  for (const config of configs(dir)) {
    await Deno.writeTextFile(`${dir}/${config.name}.yaml`, tinyConfig(dir, config));
  }
  return dir;
}

/** Output of a finished `mod.ts` subprocess. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A mod.ts ...args` in a subprocess (extra environment variables in `env`). */
export function cliProcess(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "mod.ts", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The text of a finished subprocess. */
export async function cliResult(child: Deno.ChildProcess): Promise<CliResult> {
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs `mod.ts ...args` to its end. */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return await cliResult(cliProcess(args, env));
}
