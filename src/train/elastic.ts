// The epoch loop of elastic (PipeTransformer) training on Fashion-MNIST: the same data order, LR
// schedule and evaluation as `pipewright train`, with ElasticTrainer doing the steps and the
// transitions, and a freeze trace (per epoch: frozen layers, layout, cache use, measured seconds)
// that `pipewright sim --freeze-trace` replays on more workers.
import { DataLoader, gather, type TensorDataset } from "../data/loader.js";
import type { ModelSpec } from "../nn/models/spec.js";
import type { OptimizerState } from "../optim/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { makeLrSchedule } from "./loop.js";
import { evalClassifier, loadImageDatasets } from "./task.js";
import type { LrScheduleName } from "./options.js";
import { addEpoch, createTrace, epochRecord, type FreezeOptions, type FreezeTrace } from "../pipeline/freeze/index.js";
import type { OptimizerConfig } from "../pipeline/runtime/setup.js";
import { ElasticTrainer, formatLayout } from "../pipeline/elastic/trainer.js";

export interface ElasticTrainOptions {
  spec: ModelSpec;
  seed: number;
  epochs: number;
  batch: number;
  optimizer: OptimizerConfig;
  scheduleLr: LrScheduleName;
  warmup: number;
  workers: number;
  stages?: number;
  freeze: FreezeOptions | null;
  elastic: boolean;
  cache: boolean;
  cacheBytes?: number;
  data?: string;
  limit?: number;
  /** Start from these weights / optimizer state (fine-tuning); default: createModel(spec, seed). */
  initialState?: ReadonlyMap<string, Tensor>;
  initialOptimizer?: OptimizerState | null;
  log?: (m: string) => void;
  /** Data sets already loaded (the repro reuses them across runs). */
  datasets?: { train: TensorDataset; test: TensorDataset };
}

export interface ElasticEpoch {
  epoch: number;
  loss: number;
  testAcc: number;
  testLoss: number;
  seconds: number;
  frozen: number;
  stages: number;
  replicas: number;
  microbatches: number;
  cached: boolean;
}

export interface ElasticTrainResult {
  epochs: ElasticEpoch[];
  /** Training wall-clock seconds (steps and transitions, not evaluation). */
  trainSeconds: number;
  testAcc: number;
  testLoss: number;
  trace: FreezeTrace;
  state: Map<string, Tensor>;
}

export async function trainElastic(o: ElasticTrainOptions): Promise<ElasticTrainResult> {
  const log = o.log ?? ((): void => {});
  const ds = o.datasets ?? loadImageDatasets(o.data, o.limit);
  const loader = new DataLoader(ds.train, { batchSize: o.batch, shuffle: true, seed: o.seed });
  const trainer = await ElasticTrainer.create({
    spec: o.spec, seed: o.seed, optimizer: o.optimizer, workers: o.workers, stages: o.stages, batch: o.batch,
    freeze: o.freeze, elastic: o.elastic, cache: o.cache, cacheBytes: o.cacheBytes, samples: ds.train.n, log,
  }, o.initialState, o.initialOptimizer);
  const trace = createTrace({
    model: o.spec.name, workers: o.workers, samples: ds.train.n, batch: o.batch, frozenCostRatio: trainer.autopipe.frozenCostRatio,
    microbatchesPerStage: trainer.autopipe.microbatchesPerStage, units: trainer.units,
  });
  log(formatLayout(0, trainer.currentTransition, trainer.layout, trainer.units).replace("transition after epoch 0", "start"));
  const lr = makeLrSchedule({ scheduleLr: o.scheduleLr, warmup: o.warmup }, o.epochs * loader.length);
  const epochs: ElasticEpoch[] = [];
  let step = 0, trainSeconds = 0, skipped = 0;
  try {
    for (let e = 0; e < o.epochs; e++) {
      const t0 = performance.now();
      const order = loader.order(e);
      const stageSeconds = new Array<number>(trainer.layout.stages).fill(0);
      let lossSum = 0, batches = 0, hits = 0, fills = 0;
      const layoutAtStart = { ...trainer.layout }, transition = trainer.currentTransition;
      for (let b = 0; b < loader.length; b++) {
        const idx = loader.batchIndices(e, b, order);
        const factor = lr(step);
        if (!trainer.fits(idx.length)) { skipped++; step++; continue; }
        const { x, y } = gather(ds.train, idx);
        const r = await trainer.step(x, y, idx, factor);
        step++;
        if (!Number.isFinite(r.loss)) throw new Error(`training diverged: loss ${r.loss} at step ${step}; try a smaller learning rate`);
        lossSum += r.loss; batches++;
        if (r.cached) hits++; else if (trainer.layout.prefix > 0) fills++;
        r.stageBusy.forEach((v, s) => { stageSeconds[s] += v; });
      }
      await trainer.sync();
      const epochSeconds = (performance.now() - t0) / 1000;
      const ev = evalClassifier(trainer.model, ds.test);
      const cached = hits > 0 && hits >= fills;
      addEpoch(trace, epochRecord(e + 1, { ...transition, stages: layoutAtStart.stages }, cached, { stageSeconds, wallSeconds: epochSeconds }));
      log(`epoch ${e + 1}/${o.epochs}: train loss ${(lossSum / Math.max(1, batches)).toFixed(4)}, test acc ${(ev.acc * 100).toFixed(2)}%, ` +
        `${epochSeconds.toFixed(1)} s (frozen ${layoutAtStart.frozenLayers}, ${layoutAtStart.stages} stage(s) x ${layoutAtStart.replicas} replica(s)` +
        `${layoutAtStart.prefix ? `, cache ${hits} hit / ${fills} fill batches` : ""})`);
      const t1 = performance.now();
      if (e + 1 < o.epochs) await trainer.endEpoch(e + 1);
      trainSeconds += epochSeconds + (performance.now() - t1) / 1000;
      epochs.push({ epoch: e + 1, loss: lossSum / Math.max(1, batches), testAcc: ev.acc, testLoss: ev.loss, seconds: epochSeconds,
        frozen: layoutAtStart.frozenLayers, stages: layoutAtStart.stages, replicas: layoutAtStart.replicas, microbatches: layoutAtStart.microbatches, cached });
    }
  } finally {
    await trainer.close();
  }
  if (skipped) log(`note: ${skipped} batch(es) too small for the replicas x micro-batches were skipped`);
  const last = epochs[epochs.length - 1];
  return { epochs, trainSeconds, testAcc: last?.testAcc ?? NaN, testLoss: last?.testLoss ?? NaN, trace, state: trainer.model.stateDict() };
}
