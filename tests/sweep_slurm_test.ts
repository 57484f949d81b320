/**
 * `sweep --slurm` on a real Slurm (CI starts one with ../shared/tools/slurm-local/slurm-up.sh):
 * a 2-config × 2-seed job array completes and `sweep collect` prints mean ± std; a task sent
 * USR1 mid-run is requeued, resumes from its checkpoint and ends with the same log as the
 * uninterrupted run; a task with a bad data folder fails, shows as failed in `status`, the
 * other finishes and `--wait` exits non-zero; `--local --parallel 2` gives the same logs;
 * an option value Slurm refuses (an unknown partition) is one line and nothing is queued.
 * Where no Slurm answers, the tests are reported as ignored, with the reason.
 */
import { assert, assertEquals } from "./assert.ts";
import { cli, cliProcess, cliResult, tinyRunFolder } from "./sweep_helpers.ts";

/** Why the Slurm tests cannot run here, or null when `sinfo` reports an idle node. */
function slurmUnavailable(): string | null {
  try {
    const out = new Deno.Command("sinfo", { args: ["-h", "-o", "%T"], stdout: "piped" })
      .outputSync();
    const states = new TextDecoder().decode(out.stdout).trim();
    if (out.code !== 0) return `sinfo failed (exit ${out.code}); is slurmctld running?`;
    if (!/\b(idle|mixed|allocated)\b/.test(states)) return `no usable Slurm node (${states})`;
    return null;
  } catch {
    return "no Slurm client (sinfo) on PATH; CI starts one with " +
      "../shared/tools/slurm-local/slurm-up.sh";
  }
}

const unavailable = slurmUnavailable();
if (unavailable) console.log(`sweep_slurm_test: Slurm tests ignored: ${unavailable}`);

function command(program: string, ...args: string[]): string {
  const out = new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** A log without what differs between two runs of the same task: timings, paths, environment. */
function comparable(path: string): unknown {
  const log = JSON.parse(Deno.readTextFileSync(path));
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value === null || typeof value !== "object") return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) =>
          !/seconds|per_second|PerSecond|^environment$|^output$|^overrides$/i.test(k)
        )
        .map(([k, v]) => [k, strip(v)]),
    );
  };
  return strip(log);
}

async function waitForEpochs(path: string, epochs: number, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 20; i++) {
    try {
      const log = JSON.parse(await Deno.readTextFile(path));
      if (log.average_training_loss_per_epoch.length >= epochs) return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${path}: not ${epochs} epoch(s) within ${seconds} s`);
}

Deno.test({
  name: "sweep on a real Slurm: array, collect, USR1 → requeue → resume, a failing task, --local",
  ignore: unavailable !== null,
  async fn(t) {
    // 3 epochs of 3 steps: a USR1 after the first epoch's log lands before the run ends.
    const dir = await tinyRunFolder("sweep_slurm_", 96, (dir) => [
      { name: "tiny_a", epochs: 3, batch: 32 },
      { name: "tiny_b", epochs: 3, batch: 32, temperature: 0.5 },
      { name: "tiny_bad", epochs: 3, batch: 32, dataDir: `${dir}/no-such-data` },
    ]);
    const configs = [`${dir}/tiny_a.yaml`, `${dir}/tiny_b.yaml`];
    const array = `${dir}/array`;
    const runs = ["seed0/tiny_a", "seed0/tiny_b", "seed1/tiny_a", "seed1/tiny_b"];
    const slurm = ["--slurm", "--cpus-per-task", "1", "--threads", "1", "--wait"];
    try {
      await t.step("a 2-config × 2-seed array completes; collect prints mean ± std", async () => {
        const sweep = await cli(["sweep", ...configs, "--seeds", "0,1", ...slurm, "--out", array]);
        console.log(sweep.stdout);
        assertEquals(sweep.code, 0, sweep.stdout + sweep.stderr);
        assert(/submitted Slurm job \d+: 4 task\(s\) \(array 0-3\)/.test(sweep.stdout));
        assert(sweep.stdout.includes("4 tasks: 4 finished"), sweep.stdout);
        const collect = await cli(["sweep", "collect", array]);
        console.log(collect.stdout);
        assertEquals(collect.code, 0, collect.stderr);
        for (const name of ["tiny_a", "tiny_b"]) {
          const knn = [0, 1].map((seed) =>
            100 *
            JSON.parse(Deno.readTextFileSync(`${array}/logs/seed${seed}/${name}.json`))
              .model_scores[0]
          );
          const mean = (knn[0] + knn[1]) / 2;
          const std = Math.abs(knn[0] - knn[1]) / 2;
          const row = collect.stdout.split("\n").find((l) => l.startsWith(`${name} `));
          assert(
            row?.includes(`${mean.toFixed(2)} ± ${std.toFixed(2)}`),
            `${name}: kNN ${knn.join(", ")}:\n${collect.stdout}`,
          );
          assert(/^\S+\s+2\s/.test(row!), `two runs of ${name}: ${row}`);
        }
      });

      await t.step(
        "USR1 mid-run: requeued, resumed, same log; a bad data dir fails; --wait exits 1",
        async () => {
          const out = `${dir}/preempt`;
          const sweep = cliProcess(
            [
              "sweep",
              `${dir}/tiny_a.yaml`,
              `${dir}/tiny_bad.yaml`,
              "--seeds",
              "0",
              ...slurm,
              "--out",
              out,
            ],
          );
          // Mid-run: after the first epoch's checkpoint and log, before the run ends.
          await waitForEpochs(`${out}/logs/seed0/tiny_a.json`, 1, 300);
          const job = JSON.parse(await Deno.readTextFile(`${out}/sweep.json`)).slurm.jobs[0].id;
          console.log(command("scancel", "--batch", "--signal=USR1", `${job}_0`));
          const { code, stdout, stderr } = await cliResult(sweep);
          console.log(stdout);
          assertEquals(code, 1, stdout + stderr);
          assert(stdout.includes("2 tasks: 1 finished, 1 failed"), stdout);

          const output = await Deno.readTextFile(`${out}/slurm/task-0.out`);
          console.log(output.split("\n").filter((l) => !l.includes("█")).join("\n"));
          assert(output.includes("interrupted by SIGTERM: checkpoint saved"), output);
          assert(output.includes("sweep: requeued (the run stopped with exit code 143)"), output);
          assert(output.includes("sweep: start task 0 (job"), output);
          assert(/restart 1\)/.test(output) && /resuming tiny_a: epoch [23]/.test(output), output);
          const record = command("scontrol", "show", "job", "-o", `${job}_0`);
          assert(/JobState=COMPLETED .*Restarts=1 /.test(record), record);
          assertEquals(
            comparable(`${out}/logs/seed0/tiny_a.json`),
            comparable(`${array}/logs/seed0/tiny_a.json`),
            "the requeued task's log equals the uninterrupted run's",
          );

          const status = await cli(["sweep", "status", out]);
          console.log(status.stdout);
          const rows = status.stdout.split("\n");
          assert(
            rows.some((l) => /^0\s+tiny_a\s+0\s+COMPLETED\s+1\s+3\/3\s/.test(l)),
            status.stdout,
          );
          assert(rows.some((l) => /^1\s+tiny_bad\s+0\s+FAILED\s+0\s+—\s+—\s+no log/.test(l)));
          assert(
            status.stdout.includes(
              "task 1 (tiny_bad, seed 0): exit 1: no cifar10 train files found",
            ),
            status.stdout,
          );
        },
      );

      await t.step("--local --parallel 2 gives the same logs as the Slurm array", async () => {
        const local = `${dir}/local`;
        const sweep = await cli([
          "sweep",
          ...configs,
          "--seeds",
          "0,1",
          "--local",
          "--parallel",
          "2",
          "--threads",
          "1",
          "--out",
          local,
        ]);
        console.log(sweep.stdout);
        assertEquals(sweep.code, 0, sweep.stdout + sweep.stderr);
        for (const run of runs) {
          assertEquals(
            comparable(`${local}/logs/${run}.json`),
            comparable(`${array}/logs/${run}.json`),
            run,
          );
        }
      });

      await t.step("an option value Slurm refuses: one line, nothing queued", async () => {
        const before = command("squeue", "-h");
        const bad = await cli([
          "sweep",
          ...configs,
          "--slurm",
          "--partition",
          "no_such_partition",
          "--out",
          `${dir}/refused`,
        ]);
        console.log(bad.stderr);
        assertEquals(bad.code, 2);
        assertEquals(
          bad.stderr.trim(),
          "error: sbatch refused the batch script: invalid partition specified: no_such_partition",
        );
        assertEquals(command("squeue", "-h"), before);
        let created = true;
        await Deno.stat(`${dir}/refused`).catch(() => (created = false));
        assert(!created, "no sweep folder");
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
