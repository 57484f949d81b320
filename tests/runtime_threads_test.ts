/** The default thread count (src/runtime/threads.ts): /proc/cpuinfo parsing and resolution. */
import { assertEquals, assertThrowsMessage } from "./assert.ts";
import {
  availableCpus,
  defaultThreads,
  physicalCoresFromCpuinfo,
  resolveSpinning,
  resolveThreads,
} from "../src/runtime/threads.ts";
import { ortSessionOptions } from "../src/runtime/session_options.ts";

const block = (processor: number, physical: number, core: number) =>
  `processor\t: ${processor}\nmodel name\t: Test CPU\nphysical id\t: ${physical}\ncore id\t\t: ${core}\n`;

Deno.test("physical cores: distinct (physical id, core id) pairs of /proc/cpuinfo", () => {
  // 2 sockets × 2 cores × 2 hyperthreads = 4 physical cores, 8 logical CPUs.
  const smt = [0, 1, 2, 3, 4, 5, 6, 7].map((p) => block(p, p >> 2, (p >> 1) & 1)).join("\n");
  assertEquals(physicalCoresFromCpuinfo(smt), 4);
  // This kind of VM: 2 vCPUs listed as 2 cores of one package.
  assertEquals(physicalCoresFromCpuinfo(block(0, 0, 0) + "\n" + block(1, 0, 1)), 2);
  // ARM kernels list no core ids: unknown.
  assertEquals(physicalCoresFromCpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\n\n"), null);
});

Deno.test("resolveThreads: 0 or nothing is the default, a count is kept, bad values are errors", async () => {
  const d = defaultThreads();
  assertEquals(d >= 1 && d <= availableCpus(), true, `default ${d}`);
  assertEquals([resolveThreads(undefined), resolveThreads(0), resolveThreads(3)], [d, d, 3]);
  await assertThrowsMessage(() => resolveThreads(-1), "threads: expected a whole number ≥ 0");
  await assertThrowsMessage(() => resolveThreads(1.5), "threads", "1.5");
  // ORT gets the resolved count, never its own 0 (which pins threads and, on VMs whose CPUID
  // reports one core with two hyperthreads, gives a one-thread pool).
  assertEquals(ortSessionOptions({}).intraOpNumThreads, d);
  assertEquals(resolveSpinning(true), true);
  assertEquals(resolveSpinning(false), false);
});
