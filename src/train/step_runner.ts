/**
 * The host side of the fused step: feeds parameters, buffers, optimizer
 * state and per-step scalars, and swaps in the new values the graph returns.
 */
import { allocHost } from "../onnx/dtype.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import type { Session } from "../runtime/session.ts";
import type { FusedStepLayout } from "./fused_step.ts";

/** Result of one step. */
export interface StepResult {
  loss: number;
  extras: Record<string, HostTensor>;
}

/** Runs a fused step session repeatedly, carrying its state on the host. */
export class StepRunner {
  /**
   * `initial` holds parameters and buffers by input name; optimizer state
   * missing from it starts at zero. The map is used (and updated) in place, so
   * two runners built on one map (e.g. a full-batch and a last-partial-batch
   * step) share their state.
   */
  constructor(
    readonly session: Session,
    readonly layout: FusedStepLayout,
    readonly values: Map<string, HostTensor>,
  ) {
    const initial = new Map(values);
    for (const c of layout.carried) {
      const given = initial.get(c.input);
      if (given) {
        const expected = c.shape.join(",");
        if (given.shape.join(",") !== expected) {
          throw new Error(
            `${c.input}: initial value has shape [${given.shape}], the graph expects [${expected}]`,
          );
        }
        this.values.set(c.input, given);
      } else if (c.role === "optimizer_state") {
        const shape = c.shape as number[];
        this.values.set(c.input, {
          dtype: c.dtype,
          shape,
          data: allocHost(c.dtype, shape.reduce((a, b) => a * b, 1)),
        });
      } else {
        throw new Error(`no initial value for ${c.role} ${c.input}`);
      }
    }
  }

  /** One training step on a batch. */
  async step(
    batch: Record<string, HostTensor>,
    scalars: Record<string, number>,
  ): Promise<StepResult> {
    const feeds: Record<string, HostTensor> = { ...batch };
    for (const [name, value] of this.values) feeds[name] = value;
    for (const s of this.layout.scalars) {
      const v = scalars[s.name];
      if (v === undefined) throw new Error(`step: missing scalar input ${s.name}`);
      feeds[s.name] = {
        dtype: s.dtype,
        shape: [],
        data: s.dtype === "float64" ? Float64Array.of(v) : Float32Array.of(v),
      };
    }
    const out = await this.session.run(feeds);
    for (const c of this.layout.carried) this.values.set(c.input, out[c.output]);
    const extras: Record<string, HostTensor> = {};
    for (const name of this.layout.extras) extras[name] = out[name];
    return { loss: Number(out[this.layout.loss].data[0]), extras };
  }
}
