/**
 * `sweep` without a Slurm cluster: the job-array batch script (run by bash with stand-ins
 * for the run and `scontrol`: USR1 → SIGTERM to the run → requeue of the array task; SIGTERM
 * forwarded; arguments arrive intact), Slurm's formats, bad input refused in one line with
 * nothing written, and `--local` sweeps (a failing task, status, continuing a sweep).
 * tests/sweep_slurm_test.ts runs sweeps on a real Slurm.
 */
import { assert, assertEquals } from "./assert.ts";
import {
  arraySpec,
  batchScript,
  parseScontrolJobs,
  runLocal,
  summarizeTaskOutput,
  type SweepTask,
  timeLimitSeconds,
} from "../src/sweep/mod.ts";
import { cli, type CliResult, tinyRunFolder } from "./sweep_helpers.ts";
import { main } from "../mod.ts";

Deno.test("Slurm formats: array specs, time limits, scontrol records, output markers", () => {
  assertEquals(arraySpec([0, 1, 2, 3], null), "0-3");
  assertEquals(arraySpec([5, 0, 1, 3], 2), "0-1,3,5%2");
  assertEquals(timeLimitSeconds("08:00:00"), 8 * 3600);
  assertEquals(timeLimitSeconds("90"), 90 * 60);
  assertEquals(timeLimitSeconds("1-12"), 36 * 3600);
  assertEquals(timeLimitSeconds("2-03:04:05"), 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
  assertEquals(timeLimitSeconds("UNLIMITED"), null);
  // As scontrol show job -o prints them (Slurm 22.05): a finished task and a pending range.
  const states = parseScontrolJobs([
    "JobId=14 ArrayJobId=13 ArrayTaskId=0 JobName=sweep-s2 UserId=root(0) JobState=COMPLETED " +
    "Reason=None Dependency=(null) Requeue=1 Restarts=1 BatchFlag=1 Reboot=0 ExitCode=0:0",
    "JobId=13 ArrayJobId=13 ArrayTaskId=2-4,7%2 JobName=sweep-s2 JobState=PENDING " +
    "Reason=JobArrayTaskLimit Restarts=0 ExitCode=0:0",
    "JobId=15 ArrayJobId=13 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode Restarts=0 " +
    "ExitCode=1:0",
  ].join("\n"));
  assertEquals([...states.keys()].sort(), [0, 1, 2, 3, 4, 7]);
  assertEquals(states.get(0), { state: "COMPLETED", restarts: 1, exitCode: "0:0", reason: "None" });
  assertEquals(states.get(7)?.reason, "JobArrayTaskLimit");
  assertEquals(states.get(1)?.exitCode, "1:0");
  const output = summarizeTaskOutput(
    "sweep: start task 0 (job 5_0, restart 0)\nepoch 1/3 ...\r\nsweep: requeued (exit 143)\n" +
      "sweep: start task 0 (job 5_0, restart 1)\nerror: no cifar10 train files\nsweep: exit 1\n",
  );
  assertEquals(output, {
    starts: 2,
    last: { kind: "exit", code: 1 },
    error: "no cifar10 train files",
  });
});

/** A stand-in for `deno`: records its arguments, says when it runs, exits 143 on SIGTERM. */
const FAKE_RUN = `#!/bin/bash
printf '%s\\0' "$@" > "$FAKE_DIR/args"
trap 'echo "fake run: SIGTERM"; kill "$sleeper"; exit 143' TERM
echo "fake run: started"
if [ -n "$FAKE_EXIT" ]; then exit "$FAKE_EXIT"; fi
sleep 60 &
sleeper=$!
touch "$FAKE_DIR/ready"
wait
`;

function fakeTask(index: number, dir: string): SweepTask {
  return {
    index,
    config: `${dir}/a config.yaml`,
    experiment: `exp${index}`,
    seed: index,
    epochs: 1,
    args: [
      "run",
      `${dir}/a config.yaml`,
      "--resume",
      "--set",
      "loss.type='it''s'",
      "--set",
      `x=$HOME`,
    ],
    log: `${dir}/logs/exp${index}.json`,
    report: `${dir}/logs/exp${index}.html`,
    checkpoint: `${dir}/checkpoints/exp${index}/last.safetensors`,
    output: `${dir}/slurm/task-${index}.out`,
  };
}

async function waitForFile(path: string): Promise<void> {
  for (let i = 0; i < 2400; i++) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`${path} did not appear within 60 s`);
}

Deno.test("the batch script: USR1 stops the run with SIGTERM and requeues its array task; TERM is passed on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sweep_script_" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(`${dir}/bin/deno`, FAKE_RUN, { mode: 0o755 });
    await Deno.writeTextFile(
      `${dir}/bin/scontrol`,
      `#!/bin/bash\necho "$@" >> "$FAKE_DIR/scontrol"\n`,
      { mode: 0o755 },
    );
    const tasks = [fakeTask(0, dir), fakeTask(1, dir)];
    const script = batchScript({
      tasks,
      indices: [0, 1],
      options: { jobName: "t", maxParallel: 1, signalTime: 300, extra: ["--mail-type=END"] },
      out: dir,
      cwd: dir,
      deno: `${dir}/bin/deno`,
      project: "/the/project",
      threads: null,
    });
    for (
      const directive of [
        "--array=0-1%1",
        "--requeue",
        "--open-mode=append",
        "--signal=B:USR1@300",
        `--output=${dir}/slurm/task-%a.out`,
        "--ntasks=1",
        "--mail-type=END",
      ]
    ) {
      assert(script.includes(`\n#SBATCH ${directive}\n`), `${directive} in:\n${script}`);
    }
    await Deno.writeTextFile(`${dir}/job.sh`, script);

    const run = (env: Record<string, string>) =>
      new Deno.Command("bash", {
        args: [`${dir}/job.sh`],
        env: {
          PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
          FAKE_DIR: dir,
          SLURM_ARRAY_JOB_ID: "7",
          SLURM_ARRAY_TASK_ID: "1",
          ...env,
        },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

    // USR1: SIGTERM to the run, then `scontrol requeue 7_1`, exit 0.
    const usr1 = run({ SLURM_RESTART_COUNT: "2" });
    await waitForFile(`${dir}/ready`);
    usr1.kill("SIGUSR1");
    const usr1Out = await usr1.output();
    const usr1Text = text(usr1Out.stdout);
    assertEquals(usr1Out.code, 0, usr1Text + text(usr1Out.stderr));
    assert(usr1Text.includes("sweep: start task 1 (job 7_1, restart 2)"), usr1Text);
    assert(usr1Text.includes("fake run: SIGTERM"), usr1Text);
    assert(usr1Text.includes("sweep: requeued (the run stopped with exit code 143)"), usr1Text);
    assertEquals(await Deno.readTextFile(`${dir}/scontrol`), "requeue 7_1\n");
    const args = (await Deno.readTextFile(`${dir}/args`)).split("\0").slice(0, -1);
    assertEquals(args, [
      "run",
      "-A",
      "--config",
      "/the/project/deno.json",
      "/the/project/mod.ts",
      ...tasks[1].args,
      "--threads",
      "1",
    ]);

    // SIGTERM (scancel, preemption): passed on to the run, no requeue, exit 143.
    await Deno.remove(`${dir}/ready`);
    const term = run({ SLURM_CPUS_PER_TASK: "4" });
    await waitForFile(`${dir}/ready`);
    term.kill("SIGTERM");
    const termOut = await term.output();
    assertEquals(termOut.code, 143);
    assert(text(termOut.stdout).includes("fake run: SIGTERM"));
    assert(text(termOut.stdout).trimEnd().endsWith("sweep: exit 143"));
    assertEquals(await Deno.readTextFile(`${dir}/scontrol`), "requeue 7_1\n", "no second requeue");
    assertEquals(
      (await Deno.readTextFile(`${dir}/args`)).split("\0").slice(-3, -1),
      ["--threads", "4"],
      "threads from the task's CPUs",
    );

    // A run that fails: its exit code is the job's, and the output file says it.
    const failed = await run({ FAKE_EXIT: "3" }).output();
    assertEquals(failed.code, 3);
    assertEquals(summarizeTaskOutput(text(failed.stdout)).last, { kind: "exit", code: 3 });
    const unknown = await run({ SLURM_ARRAY_TASK_ID: "9" }).output();
    assertEquals(unknown.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function tinyFolder(): Promise<string> {
  return await tinyRunFolder("sweep_", 32, (dir) => [
    { name: "tiny" },
    { name: "tiny_bad", dataDir: `${dir}/no-such-data` },
  ]).then(async (dir) => {
    await Deno.copyFile(`${dir}/tiny.yaml`, `${dir}/tiny_copy.yaml`);
    return dir;
  });
}

/** `main(args)` here, with what it prints. */
async function inProcess(args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => err.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("bad sweep input: one line each, nothing written or submitted", async () => {
  const dir = await tinyFolder();
  try {
    const out = `${dir}/sweep`;
    const cases: [string[], Record<string, string>, string][] = [
      [[`${dir}/tiny.yaml`, "--slurm", "--time", "8h"], {}, '--time "8h": expected a Slurm time'],
      [[`${dir}/tiny.yaml`, "--slurm", "--mem", "16X"], {}, '--mem "16X": expected a size'],
      [
        [`${dir}/tiny.yaml`, "--slurm", "--time", "00:01:00"],
        {},
        "--signal-time 120 is not below --time 00:01:00 (60 s)",
      ],
      // No sbatch: a PATH with nothing on it (deno itself is called by its full path).
      [[`${dir}/tiny.yaml`, "--slurm"], { PATH: dir }, "sbatch not found on PATH: --slurm needs"],
      [
        [`${dir}/tiny.yaml`, `${dir}/tiny_copy.yaml`, "--seeds", "0,1", "--local"],
        {},
        `${dir}/tiny.yaml (seed 0) and ${dir}/tiny_copy.yaml (seed 0) would both write ${out}/logs/seed0/tiny.json`,
      ],
      [
        [`${dir}/nothing*.yaml`, "--local"],
        {},
        "nothing*.yaml: no config files (.yaml, .yml) match",
      ],
      [[`${dir}/tiny.yaml`, "--local", "--slurm"], {}, "choose one engine, --slurm or --local"],
      [[`${dir}/tiny.yaml`, "--local", "--partition", "gpu"], {}, "--partition applies to --slurm"],
      [
        [`${dir}/tiny.yaml`, "--local", "--gpus", "0,1", "--parallel", "3"],
        {},
        "--parallel 3 with",
      ],
      [[`${dir}/tiny.yaml`, "--local", "--seeds", "0,x"], {}, "--seeds 0,x: expected"],
    ];
    for (const [args, env, expected] of cases) {
      const argv = ["sweep", ...args, "--out", out];
      // In this process, but for the PATH case (which must not change this process's PATH).
      const result = Object.keys(env).length > 0 ? await cli(argv, env) : await inProcess(argv);
      const lines = result.stderr.trimEnd().split("\n");
      assert(result.code !== 0, `exit code for ${args.join(" ")}`);
      assertEquals(lines.length, 1, `one line for ${args.join(" ")}:\n${result.stderr}`);
      assert(lines[0].startsWith("error: ") && lines[0].includes(expected), lines[0]);
      assertEquals(result.stdout, "", args.join(" "));
    }
    let created = true;
    await Deno.stat(out).catch(() => (created = false));
    assert(!created, "the sweep folder was not created");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--local: tasks as subprocesses; a failing task shows in status and the exit code; a rerun continues", async () => {
  const dir = await tinyFolder();
  try {
    const out = `${dir}/sweep`;
    const args = [
      "sweep",
      `${dir}/tiny.yaml`,
      `${dir}/tiny_bad.yaml`,
      "--local",
      "--parallel",
      "2",
    ];
    const first = await cli([...args, "--threads", "1", "--out", out]);
    assertEquals(first.code, 1, first.stdout + first.stderr);
    assert(first.stdout.includes("task 1 (tiny_bad, seed 0) failed (exit 1;"), first.stdout);
    assert(first.stdout.includes("2 tasks: 1 finished, 1 failed"), first.stdout);
    const log = JSON.parse(await Deno.readTextFile(`${out}/logs/tiny.json`));
    assertEquals(log.status, "finished");
    assert(log.overrides.includes(`output.log_dir="${out}/logs"`), log.overrides.join(", "));

    const status = await cli(["sweep", "status", out]);
    assertEquals(status.code, 0, status.stderr);
    const rows = status.stdout.split("\n");
    const row = (task: number) => rows.find((l) => l.startsWith(`${task} `))?.split(/\s+/);
    const score = `${(100 * log.model_scores[0]).toFixed(2)}`;
    assertEquals(row(0), ["0", "tiny", "0", "COMPLETED", "0", "1/1", score, "%", "finished"]);
    assertEquals(row(1), ["1", "tiny_bad", "0", "FAILED", "0", "—", "—", "no", "log"]);
    assert(
      status.stdout.includes(`task 1 (tiny_bad, seed 0): exit 1: no cifar10 train files found`),
      status.stdout,
    );

    // The same command again runs only what has not finished (and it fails again).
    const again = await cli([...args, "--threads", "1", "--out", out]);
    assertEquals(again.code, 1);
    assert(again.stdout.includes("1 of 2 tasks have not finished"), again.stdout);
    assert(!again.stdout.includes("task 0 (tiny, seed 0) started"), again.stdout);
    const status2 = await cli(["sweep", "status", out]);
    assert(
      /^1\s+tiny_bad\s+0\s+FAILED\s+1\s/m.test(status2.stdout),
      `a restart:\n${status2.stdout}`,
    );
    // Another task list in the same folder is refused.
    const other = await cli(["sweep", `${dir}/tiny.yaml`, "--local", "--out", out]);
    assertEquals(other.code, 2);
    assert(other.stderr.includes(`${out} holds another sweep`), other.stderr);

    const collect = await cli(["sweep", "collect", out]);
    assertEquals(collect.code, 0, collect.stderr);
    assert(/^tiny\s+1\s/m.test(collect.stdout), collect.stdout);
    assert(collect.stdout.includes("1 of 2 task(s) have no log yet: 1 (tiny_bad, seed 0)"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--local --gpus: each running task gets its own GPU, N at a time, the same command", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sweep_gpus_" });
  try {
    // A stand-in for deno: notes its GPU and the tasks running beside it, then exits with a code.
    await Deno.writeTextFile(
      `${dir}/deno`,
      `#!/bin/bash
echo "gpu=$CUDA_VISIBLE_DEVICES args=$*"
(set -o noclobber; : > "${dir}/gpu.$CUDA_VISIBLE_DEVICES") 2>/dev/null || echo "GPU clash"
: > "${dir}/task.$$"
sleep 0.3
echo "running: $(ls "${dir}" | grep -c '^task\\.')"
rm "${dir}/task.$$" "${dir}/gpu.$CUDA_VISIBLE_DEVICES"
[[ "$*" == *exp2* ]] && exit 3
exit 0
`,
      { mode: 0o755 },
    );
    await Deno.mkdir(`${dir}/slurm`);
    const tasks = [0, 1, 2, 3].map((i) => fakeTask(i, dir));
    tasks.forEach((t, i) => (t.args = ["run", `exp${i}.yaml`, "--resume"]));
    const result = await runLocal(tasks, {
      parallel: 2,
      gpus: ["3", "5"],
      threads: 2,
      cwd: dir,
      deno: `${dir}/deno`,
      project: "/p",
    });
    assertEquals([...result.exitCodes.entries()].sort(), [[0, 0], [1, 0], [2, 3], [3, 0]]);
    assertEquals(result.stoppedBy, null);
    const outputs = await Promise.all(tasks.map((t) => Deno.readTextFile(t.output)));
    assert(outputs.some((o) => o.includes("running: 2\n")), "two at once");
    for (const task of tasks) {
      const output = outputs[task.index];
      const gpu = /gpu=(\d)/.exec(output)?.[1];
      assert(gpu === "3" || gpu === "5", output);
      assert(output.includes(`CUDA_VISIBLE_DEVICES=${gpu})`), "the start marker names it");
      assert(
        output.includes(
          `args=run -A --config /p/deno.json /p/mod.ts run exp${task.index}.yaml --resume --threads 2`,
        ),
        output,
      );
      assert(/running: [12]\n/.test(output) && !output.includes("GPU clash"), output);
      assertEquals(summarizeTaskOutput(output).last, {
        kind: "exit",
        code: task.index === 2 ? 3 : 0,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
