// A group of one: every collective is the identity. A user's tensor-parallel layers built over it are
// whole (dense) layers, e.g. the main thread's copy of a model whose workers build it over T ranks.
import type { SyncCollectives } from "./types.js";

export function soloCollectives(): SyncCollectives {
  return {
    rank: 0, size: 1,
    allReduce: async () => {}, broadcast: async () => {}, barrier: async () => {},
    allReduceSync: () => {}, broadcastSync: () => {}, barrierSync: () => {},
    abort: () => {}, close: () => {},
  };
}
