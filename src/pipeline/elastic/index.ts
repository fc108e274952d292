// PipeTransformer's elastic training (freeze policy + AutoPipe + AutoDP + AutoCache) on the pipeline
// runtime's executors: worker threads, or MPI ranks (mpi-phase.ts, imported on demand: it needs the
// MPI addon). Decisions live in ../freeze; this folder runs them.
export { ElasticTrainer, formatLayout, type ElasticConfig, type ElasticFreezeState, type ElasticResume, type ElasticStepResult } from "./trainer.js";
export { combineOptimizerStates, phaseSetup, threadsPhase, type PhaseExecutor, type PhaseFactory, type PhaseLayout } from "./phase.js";
export { AttentionSubBlock, MlpSubBlock, runnableUnits, applyFreeze, frozenParamNames, type RunnableUnit } from "./units.js";
