/**
 * `export-graphs [config.yaml ...] [--out DIR]`: write the training
 * artifacts of each config to `<out>/<experiment>/` (see
 * `src/artifacts/artifacts.ts`); without a config, those of the default model
 * of each method (ETH, SDCLR). Prints the parameter counts, checked against
 * torchvision's, and the file sizes.
 *
 * The training graphs are static-shaped at the config's `train.batch_size`
 * (BN statistics and the 2N×2N contrastive loss need a fixed 2N); the eval
 * graph takes any batch.
 */
import { join, relative } from "node:path";
import { ARTIFACT_FILES, writeArtifacts } from "../artifacts/artifacts.ts";
import { loadConfig } from "../config/mod.ts";
import type { ResNetArch, ResNetConfig, ResNetStem } from "../nn/mod.ts";
import type { Command } from "./commands.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The default model of each method, exported when no config is given. */
export const DEFAULT_EXPORTS: readonly { method: string; config: string; about: string }[] = [
  {
    method: "ETH",
    config: join(ROOT, "config/eth/experiment_5.yaml"),
    about: "ResNet-50 (imagenet stem) on 32x32, Linear 2048→128, weighted NT-Xent, Adam, batch 256",
  },
  {
    method: "SDCLR",
    config: join(ROOT, "config/sdclr/sdclr_cifar10_split1_D_i.yaml"),
    about: "ResNet-18 (cifar stem), SDCLR head, dual BN, NT-Xent τ 0.2, SGD, batch 512",
  },
];

/** torchvision's parameter counts of the encoders without classifier (width 1). */
export const TORCHVISION_ENCODER_PARAMS: Record<`${ResNetArch}/${ResNetStem}`, number> = {
  "resnet18/cifar": 11_168_832,
  "resnet18/imagenet": 11_176_512,
  "resnet34/cifar": 21_276_992,
  "resnet34/imagenet": 21_284_672,
  "resnet50/cifar": 23_500_352,
  "resnet50/imagenet": 23_508_032,
};

/**
 * Throws when a full-width encoder's parameter count differs from
 * torchvision's; returns the reference count (undefined for other widths).
 */
export function checkEncoderParamCount(encoder: ResNetConfig, count: number): number | undefined {
  if ((encoder.width ?? 1) !== 1) return undefined;
  const expected = TORCHVISION_ENCODER_PARAMS[`${encoder.arch}/${encoder.stem}`];
  if (count !== expected) {
    throw new Error(
      `${encoder.arch} (${encoder.stem} stem) has ${count} parameters, torchvision's has ${expected}`,
    );
  }
  return expected;
}

const thousands = (n: number) => n.toLocaleString("en-US");

function formatBytes(bytes: number): string {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

/** Exports one config; returns the lines to print. */
export async function exportConfig(
  path: string,
  outDir: string,
  options: { checkpoint?: boolean; label?: string } = {},
): Promise<string[]> {
  const { config } = await loadConfig(path);
  const result = await writeArtifacts(config, outDir, { checkpoint: options.checkpoint });
  const { manifest } = result;
  const { encoder, method, batchSize, imageSize } = manifest.spec;
  const reference = checkEncoderParamCount(encoder, manifest.encoder_param_count);
  const lines = [
    `${config.experiment}${options.label ? ` (${options.label})` : ""} from ${
      relative(Deno.cwd(), path)
    }`,
    `  ${encoder.arch} ${encoder.stem} stem, width ${
      encoder.width ?? 1
    }, ${imageSize}x${imageSize}, ` +
    `method ${method.name}, ${manifest.optimizer.optimizer.kind}, batch ${batchSize} (graphs fixed at it)`,
    `  encoder parameters (no head): ${thousands(manifest.encoder_param_count)}` +
    (reference === undefined ? "" : " = torchvision's"),
    `  trainable parameters in the step: ${thousands(manifest.param_count)}, ` +
    `BN buffer values: ${thousands(manifest.buffer_count)}`,
  ];
  lines.push(`  files in ${result.dir}/:`);
  for (const [file, bytes] of Object.entries(result.files)) {
    lines.push(`    ${file.padEnd(24)} ${formatBytes(bytes).padStart(9)}`);
  }
  return lines;
}

/** The export-graphs command. */
export const exportGraphsCommand: Command = {
  name: "export-graphs",
  summary:
    "write the training, eval, optimizer and fused-step graphs of a config to graphs/<name>/",
  usage: "[config.yaml ...]",
  options: {
    out: { type: "string", description: "output folder", default: "graphs" },
    "no-checkpoint": {
      type: "boolean",
      description: `skip ${ARTIFACT_FILES.checkpoint} (initial weights; large)`,
      default: false,
    },
  },
  async run(args) {
    const outDir = args.values.out as string;
    const checkpoint = !(args.values["no-checkpoint"] as boolean);
    const jobs = args.positionals.length > 0
      ? args.positionals.map((config) => ({ config, label: undefined as string | undefined }))
      : DEFAULT_EXPORTS.map((d) => ({
        config: d.config,
        label: `${d.method} default: ${d.about}`,
      }));
    for (const job of jobs) {
      const lines = await exportConfig(job.config, outDir, { checkpoint, label: job.label });
      console.log(lines.join("\n"));
    }
  },
};
