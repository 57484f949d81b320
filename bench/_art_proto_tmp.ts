import { resnetParamCount } from "../src/nn/mod.ts";
console.log(resnetParamCount({arch:"resnet34",stem:"cifar"}));
