import * as ort from "onnxruntime-node";
import { encodeModel, Graph, ops } from "../src/onnx/mod.ts";
import { conv2dGeometry, convInputGrad, convWeightGrad } from "../src/autodiff/rules/conv.ts";
const [strategy, kind, n, c, k, size, kernel, stride, pad] = Deno.args;
const N = +n, C = +c, K = +k, S = +size, R = +kernel, st = +stride, p = +pad;
const graph = new Graph("p");
const x = graph.input("x", "float32", [N, C, S, S]);
const w = graph.input("w", "float32", [K, C, R, R]);
const geo = conv2dGeometry(x, w, { strides: [st, st], pads: [p, p, p, p] });
const dy = graph.input("dy", "float32", [N, K, ...geo.outSize]);
const out = kind === "fwd" ? ops.conv(x, w, null, { strides: [st, st], pads: [p, p, p, p] }) : kind === "dx" ? convInputGrad(dy, w, geo, strategy as never) : convWeightGrad(x, dy, geo, strategy as never);
graph.output(out, "out");
const sess = await ort.InferenceSession.create(encodeModel(graph, { omitValueInfo: true }), { intraOpNumThreads: 2, interOpNumThreads: 1, executionMode: "sequential", enableProfiling: true, profileFilePrefix: "/tmp/cg/prof", graphOptimizationLevel: "all" });
const mk = (shape: number[]) => new ort.Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => Math.random()), shape);
const feeds: Record<string, ort.Tensor> = {};
const all: Record<string, ort.Tensor> = { x: mk([N, C, S, S]), w: mk([K, C, R, R]), dy: mk(dy.shape as number[]) };
for (const nm of sess.inputNames) feeds[nm] = all[nm];
for (let i = 0; i < 8; i++) await sess.run(feeds);
sess.endProfiling();
await sess.release();
const file = "/tmp/cg/" + [...Deno.readDirSync("/tmp/cg")].map((e) => e.name).filter((n) => n.startsWith("prof")).sort().pop()!;
const events = JSON.parse(Deno.readTextFileSync(file)) as { cat: string; name: string; dur: number; args: { op_name?: string } }[];
const per = new Map<string, number[]>();
for (const e of events) if (e.cat === "Node" && e.name.endsWith("_kernel_time")) { const key = `${e.args.op_name} ${e.name.replace("_kernel_time", "")}`; (per.get(key) ?? per.set(key, []).get(key)!).push(e.dur); }
let total = 0;
for (const [key, durs] of per) { const m = durs.slice(3).sort((a, b) => a - b)[Math.floor((durs.length - 3) / 2)]; total += m; console.log((m / 1000).toFixed(2).padStart(8), key); }
console.log((total / 1000).toFixed(2).padStart(8), "TOTAL");
Deno.removeSync(file);
