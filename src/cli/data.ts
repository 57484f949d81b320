/** `data`: download CIFAR archives with checksums, make long-tail splits. */
import { NotImplementedError } from "./errors.ts";
import type { Command } from "./commands.ts";

/** The data command. */
export const dataCommand: Command = {
  name: "data",
  summary: "data fetch cifar10|cifar100 [--dir D] | data make-lt --dataset cifar10 --imbalance 100 --seed S",
  run() {
    throw new NotImplementedError("the `data` command", 7);
  },
};
