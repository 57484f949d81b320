/**
 * `<sweep folder>/sweep.json`: the task list (each task's config, seed, command, log,
 * checkpoint and output paths) and how it was run (Slurm jobs or local sessions), written
 * atomically; `sweep status` and `sweep collect` read it.
 */
import { join } from "node:path";
import { z } from "zod";
import { writeTextAtomic } from "../util/atomic.ts";
import { zodProblems } from "../config/errors.ts";
import type { SlurmOptions } from "./slurm.ts";
import type { SweepTask } from "./tasks.ts";

/** One `sbatch` of the sweep (a resubmission holds only the unfinished tasks). */
export interface SlurmJob {
  id: string;
  tasks: number[];
  submitted: string;
}

/** One `--local` session of the sweep. */
export interface LocalSession {
  pid: number;
  hostname: string;
  started: string;
  parallel: number;
  /** `CUDA_VISIBLE_DEVICES` values, one per slot; null: none set. */
  gpus: string[] | null;
}

/** The content of sweep.json. */
export interface SweepManifest {
  version: 1;
  created: string;
  /** The folder the tasks run in. */
  cwd: string;
  deno: string;
  /** The project folder (mod.ts, deno.json). */
  project: string;
  engine: "slurm" | "local";
  tasks: SweepTask[];
  slurm: { script: string; options: SlurmOptions; jobs: SlurmJob[] } | null;
  local: { sessions: LocalSession[] } | null;
}

const TaskSchema = z.object({
  index: z.number(),
  config: z.string(),
  experiment: z.string(),
  seed: z.number(),
  epochs: z.number(),
  args: z.array(z.string()),
  log: z.string(),
  report: z.string(),
  checkpoint: z.string(),
  output: z.string(),
});

const ManifestSchema = z.looseObject({
  version: z.literal(1),
  created: z.string(),
  cwd: z.string(),
  deno: z.string(),
  project: z.string(),
  engine: z.enum(["slurm", "local"]),
  tasks: z.array(TaskSchema),
  slurm: z.looseObject({
    script: z.string(),
    options: z.record(z.string(), z.unknown()),
    jobs: z.array(z.object({ id: z.string(), tasks: z.array(z.number()), submitted: z.string() })),
  }).nullable(),
  local: z.looseObject({
    sessions: z.array(
      z.looseObject({ pid: z.number(), hostname: z.string(), started: z.string() }),
    ),
  }).nullable(),
});

/** The manifest's path in a sweep folder. */
export function manifestPath(dir: string): string {
  return join(dir, "sweep.json");
}

/** Writes sweep.json atomically. */
export async function writeManifest(dir: string, manifest: SweepManifest): Promise<void> {
  await writeTextAtomic(manifestPath(dir), JSON.stringify(manifest, null, 2) + "\n");
}

/** Reads sweep.json of a sweep folder; null when there is none. Errors name the file. */
export async function readManifest(dir: string): Promise<SweepManifest | null> {
  const path = manifestPath(dir);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new Error(`${path}: cannot read it: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not JSON (${(error as Error).message})`);
  }
  const result = ManifestSchema.safeParse(document);
  if (!result.success) {
    throw new Error(`${path}: not a sweep manifest: ${zodProblems(result.error).join("; ")}`);
  }
  return result.data as unknown as SweepManifest;
}

/** Reads sweep.json, refusing a folder without one. */
export async function requireManifest(dir: string): Promise<SweepManifest> {
  const manifest = await readManifest(dir);
  if (!manifest) {
    throw new Error(`${dir}: no sweep.json here (not a sweep folder, or nothing was submitted)`);
  }
  return manifest;
}
