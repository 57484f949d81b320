/**
 * The channel block of ORT's NCHWc CPU kernels on this host (MLAS picks it
 * from the CPU: 8 with AVX2, 16 with AVX-512), found by running ReorderInput
 * on a known tensor and reading the layout it writes.
 */
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { ONNX_DTYPE_CODE } from "../onnx/dtype.ts";
import { IR_VERSION, OPSET } from "../onnx/proto.ts";
import { NCHWC_DOMAIN } from "../onnx/nchwc.ts";

const { onnx } = onnxProto;
const PROBE_CHANNELS = 64;

let probed: Promise<number | null> | undefined;

/** The block size, or null when this ORT build has no NCHWc kernels (probed once per process). */
export function nchwcBlockSize(): Promise<number | null> {
  probed ??= probeBlockSize();
  return probed;
}

/**
 * The block that ReorderInput's output `data` shows for an input [1, C, 1, 2]
 * holding c·2 + w: blocked as [C/B, 1, 2, B], entry B is x[0, w = 1] = 1.
 * Null when the layout is not a blocking of that input.
 */
export function blockFromReorder(data: Float32Array, channels: number): number | null {
  const block = data.indexOf(1);
  if (block < 2 || channels % block !== 0) return null;
  for (let i = 0; i < data.length; i++) {
    const lane = i % block;
    const w = Math.floor(i / block) % 2;
    const cb = Math.floor(i / (2 * block));
    if (data[i] !== (cb * block + lane) * 2 + w) return null;
  }
  return block;
}

async function probeBlockSize(): Promise<number | null> {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: "", version: OPSET }, { domain: NCHWC_DOMAIN, version: 1 }],
    graph: {
      name: "nchwc_probe",
      node: [{ opType: "ReorderInput", domain: NCHWC_DOMAIN, input: ["x"], output: ["y"] }],
      input: [tensorInfo("x")],
      output: [tensorInfo("y")],
    },
  });
  const input = Float32Array.from({ length: PROBE_CHANNELS * 2 }, (_, i) => i);
  try {
    const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), {
      executionProviders: ["cpu"],
      logSeverityLevel: 3,
    });
    try {
      const out = await session.run({
        x: new ort.Tensor("float32", input, [1, PROBE_CHANNELS, 1, 2]),
      });
      return blockFromReorder(out.y.data as Float32Array, PROBE_CHANNELS);
    } finally {
      await session.release();
    }
  } catch {
    return null;
  }
}

function tensorInfo(name: string): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE_CODE.float32,
        shape: { dim: [1, PROBE_CHANNELS, 1, 2].map((d) => ({ dimValue: d })) },
      },
    },
  };
}
