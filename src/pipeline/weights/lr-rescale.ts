// PipeMare learning-rate rescheduling (T1): stage s at step k uses
//   lr_{k,s} = lr_k * tau_s ^ -(1 - min(k/K, 1)),
// so early on a stage with delay tau takes steps 1/tau as large, and from step K on every stage
// follows the base schedule. K = 0 disables the rescaling (factor 1 from the start).
import { checkTau } from "./policy.js";

export function pipemareLrFactor(k: number, tau: number, K: number): number {
  if (!Number.isInteger(k) || k < 0) throw new Error(`pipemare lr: step k must be a non-negative integer, got ${k}`);
  checkTau("pipemare lr", tau);
  if (!Number.isInteger(K) || K < 0) throw new Error(`pipemare lr: annealing horizon K must be a non-negative integer (steps), got ${K}`);
  if (K === 0) return 1;
  return Math.pow(tau, -(1 - Math.min(k / K, 1)));
}
