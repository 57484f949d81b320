import { augmentationGraph, ethRecipe, planRecipe, sampleBatch, sdclrRecipe, reference } from "../src/augment/mod.ts";
import { Session } from "../src/runtime/session.ts";
import { Rng } from "../src/util/rng.ts";

for (const recipe of [ethRecipe(), sdclrRecipe()]) {
  const plan = planRecipe(recipe, 32, 32);
  const B = 8;
  const rng = new Rng(1);
  const imgs = new Uint8Array(B * 3 * 32 * 32).map(() => rng.int(256));
  const { draws, params } = sampleBatch(plan, rng, B, 2);
  const s = await Session.create(augmentationGraph(plan), { threads: 2 });
  const out = await s.run({ images: { dtype: "uint8", shape: [B, 3, 32, 32], data: imgs }, params });
  let worst = 0;
  for (let v = 0; v < 2; v++) for (let b = 0; b < B; b++) {
    const ref = reference.referenceView(recipe, reference.toUnit(imgs.subarray(b * 3072, (b + 1) * 3072), 32, 32), draws[v][b]);
    const got = (out[`view${v + 1}`].data as Float32Array).subarray(b * 3072, (b + 1) * 3072);
    let m = 0;
    for (let i = 0; i < 3072; i++) m = Math.max(m, Math.abs(got[i] - ref.data[i]));
    worst = Math.max(worst, m);
    if (m > 1e-4) console.log(recipe.name, v, b, m, JSON.stringify(draws[v][b]));
  }
  console.log(recipe.name, "worst", worst);
}
