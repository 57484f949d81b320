import { Graph, ops } from "../src/onnx/mod.ts";
import { Session } from "../src/runtime/session.ts";
function cpuTicks() {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const own = Deno.readTextFileSync("/proc/self/stat"); const a = own.slice(own.lastIndexOf(")") + 2).split(" ");
  return { machine: f[0] + f[1] + f[2] + f[5] + f[6] + f[7], self: +a[11] + +a[12] };
}
const g = new Graph("n");
const x = g.input("x", "float32", [64, 128, 16, 16]);
const w = g.input("w", "float32", [128, 128, 3, 3]);
g.output(ops.conv(x, w, null, { pads: [1, 1, 1, 1] }), "y");
const s = await Session.create(g, { threads: Number(Deno.args[0] ?? 2) });
const feeds = { x: { dtype: "float32" as const, shape: [64, 128, 16, 16], data: new Float32Array(64 * 128 * 256).fill(0.5) }, w: { dtype: "float32" as const, shape: [128, 128, 3, 3], data: new Float32Array(128 * 128 * 9).fill(0.1) } };
for (let i = 0; i < 3; i++) await s.run(feeds);
for (let r = 0; r < 12; r++) {
  const b = cpuTicks(); const t0 = performance.now();
  for (let i = 0; i < 5; i++) await s.run(feeds);
  const ms = performance.now() - t0; const e = cpuTicks();
  console.log((ms / 5).toFixed(1), "ms; others", ((e.machine - b.machine - (e.self - b.self)) * 10 / ms).toFixed(2), "cores; self", ((e.self - b.self) * 10 / ms).toFixed(2));
}
