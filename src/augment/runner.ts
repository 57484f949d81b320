/**
 * An ONNX Runtime session over an augmentation graph, with the host sampling
 * next to it: `augment(images, batch, rng)` draws the parameters and returns
 * the views.
 */
import type { Rng } from "../util/rng.ts";
import type { HostTensor } from "../runtime/host_tensor.ts";
import { Session, type SessionOptions } from "../runtime/session.ts";
import { augmentationGraph } from "./graph.ts";
import { type BatchParams, sampleBatch } from "./params.ts";
import { planRecipe, type Recipe, type RecipePlan } from "./recipes.ts";

/** Options of {@link Augmenter.create}. */
export interface AugmenterOptions extends SessionOptions {
  /** Input image height and width. */
  height: number;
  width: number;
  /** Views per image (default 2). */
  views?: number;
}

/** A recipe compiled to a session: draws parameters on the host, runs the graph. */
export class Augmenter {
  private constructor(
    readonly plan: RecipePlan,
    readonly views: number,
    readonly session: Session,
  ) {}

  /** Plans the recipe for the image size, builds its graph and opens a session. */
  static async create(recipe: Recipe, options: AugmenterOptions): Promise<Augmenter> {
    const plan = planRecipe(recipe, options.height, options.width);
    const views = options.views ?? 2;
    const session = await Session.create(augmentationGraph(plan, { views }), options);
    return new Augmenter(plan, views, session);
  }

  /** Draws the parameters of `batch` samples (all views); `sizes` as for {@link augment}. */
  sample(rng: Rng, batch: number, sizes: Int32Array | null = null): BatchParams {
    return sampleBatch(this.plan, rng, batch, this.views, sizes);
  }

  /** Runs the graph on uint8 CHW images of `batch` samples; returns one float32 tensor per view. */
  async run(images: Uint8Array, batch: number, params: HostTensor): Promise<HostTensor[]> {
    const { inputHeight: h, inputWidth: w } = this.plan;
    if (images.length !== batch * 3 * h * w) {
      throw new Error(`Augmenter.run: ${images.length} bytes for ${batch} images of 3x${h}x${w}`);
    }
    if (
      params.shape[0] !== this.views || params.shape[1] !== batch ||
      params.shape[2] !== this.plan.columns
    ) {
      throw new Error(
        `Augmenter.run: params [${
          params.shape.join(", ")
        }], expected [${this.views}, ${batch}, ${this.plan.columns}]`,
      );
    }
    const feeds: Record<string, HostTensor> = {
      images: { dtype: "uint8", shape: [batch, 3, h, w], data: images },
    };
    if (this.session.inputNames.includes("params")) feeds.params = params;
    const out = await this.session.run(feeds);
    return this.session.outputNames.map((name) => out[name]);
  }

  /**
   * Draws parameters from `rng` and runs the graph. `sizes` ([height, width] of image k at 2k,
   * 2k + 1) marks whole images of different sizes at the top-left of the input canvas: crops are
   * drawn within each image and only its pixels are read.
   */
  async augment(
    images: Uint8Array,
    batch: number,
    rng: Rng,
    sizes: Int32Array | null = null,
  ): Promise<{ views: HostTensor[]; params: BatchParams }> {
    const params = this.sample(rng, batch, sizes);
    return { views: await this.run(images, batch, params.params), params };
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
