// PipeTransformer's runtime: elastic training (freeze policy + AutoPipe + AutoDP + AutoCache) on
// worker threads (phase.ts) or MPI ranks (mpi-phase.ts, imported on demand: it needs the MPI addon).
// Decisions live in ../freeze; this folder runs them.
export { ElasticTrainer, formatLayout, type ElasticConfig, type ElasticFreezeState, type ElasticResume, type ElasticStepResult } from "./trainer.js";
export { ElasticPhase, combineOptimizerStates, type PhaseLayout, type PhaseOptions, type PhaseStepResult } from "./phase.js";
export { AttentionSubBlock, MlpSubBlock, runnableUnits, applyFreeze, frozenParamNames, type RunnableUnit } from "./units.js";
export type { PhaseFactory, TrainingPhase } from "./phase-contract.js";
