// A user's layer list for test/library-freeze.test.ts: the vit's layers (patch embedding,
// transformer blocks, norm, token mean, head) returned as a plain Module[], so a freezing pipe gets
// them through a module model source (state names "0.*", "1.*", ...) rather than as the built-in vit.
import { createModel, type Module, type ModelSpec } from "../src/index.js";

export function build(args: { spec: ModelSpec; seed: number }): Module[] {
  return [...createModel(args.spec, args.seed).units];
}
