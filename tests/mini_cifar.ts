/** Run folders over the bundled CIFAR-10 subset (data/cifar10-mini) for end-to-end tests. */
import { loadCifar } from "../src/data/cifar.ts";

const BUNDLED = `${Deno.cwd()}/data/cifar10-mini`;

/** A new temporary folder whose `data/cifar-10-batches-bin` links the bundled subset's files. */
export async function miniCifarRunFolder(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  const bin = `${dir}/data/cifar-10-batches-bin`;
  await Deno.mkdir(bin, { recursive: true });
  for (const name of ["data_batch_1.bin", "test_batch.bin", "batches.meta.txt"]) {
    await Deno.symlink(`${BUNDLED}/${name}`, `${bin}/${name}`);
  }
  return dir;
}

/** The bundled subset's training-image indices, one list per class (0..9), in file order. */
export async function miniCifarIndicesByClass(): Promise<number[][]> {
  const train = await loadCifar({ dataset: "cifar10", split: "train", dir: BUNDLED });
  const byClass: number[][] = Array.from({ length: 10 }, () => []);
  train.labels.forEach((label, i) => byClass[label].push(i));
  return byClass;
}
