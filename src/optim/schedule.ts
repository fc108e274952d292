// Learning-rate schedules: pure functions from the 0-based optimizer step to a factor that multiplies
// each parameter group's base lr. They compose (warm-up wraps another schedule; products multiply).
export type LrSchedule = (step: number) => number;

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`schedule step must be a non-negative integer, got ${step}`);
}

export function constantLr(): LrSchedule {
  return (step) => { checkStep(step); return 1; };
}

/** gamma^floor(step / stepSize), like torch's StepLR. */
export function stepLr(stepSize: number, gamma = 0.1): LrSchedule {
  if (!Number.isInteger(stepSize) || stepSize <= 0) throw new Error(`step schedule: stepSize must be a positive integer, got ${stepSize}`);
  if (!(gamma > 0)) throw new Error(`step schedule: gamma must be > 0, got ${gamma}`);
  return (step) => { checkStep(step); return gamma ** Math.floor(step / stepSize); };
}

/**
 * Cosine decay from 1 at step 0 to minFactor at totalSteps (held there afterwards), like torch's
 * CosineAnnealingLR with eta_min = minFactor * base lr, without restarts.
 */
export function cosineLr(totalSteps: number, minFactor = 0): LrSchedule {
  if (!Number.isInteger(totalSteps) || totalSteps <= 0) throw new Error(`cosine schedule: totalSteps must be a positive integer, got ${totalSteps}`);
  if (!(minFactor >= 0 && minFactor <= 1)) throw new Error(`cosine schedule: minFactor must be in [0, 1], got ${minFactor}`);
  return (step) => {
    checkStep(step);
    const t = Math.min(step, totalSteps) / totalSteps;
    return minFactor + (1 - minFactor) * (1 + Math.cos(Math.PI * t)) / 2;
  };
}

/**
 * Linear warm-up: factor (step + 1) / warmupSteps for step < warmupSteps (so the first step is not
 * wasted at lr 0), then `after` evaluated at step - warmupSteps.
 */
export function linearWarmup(warmupSteps: number, after: LrSchedule = constantLr()): LrSchedule {
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`warm-up: steps must be a non-negative integer, got ${warmupSteps}`);
  return (step) => {
    checkStep(step);
    return step < warmupSteps ? (step + 1) / warmupSteps : after(step - warmupSteps);
  };
}

/** Product of several schedules' factors. */
export function productLr(...schedules: LrSchedule[]): LrSchedule {
  return (step) => schedules.reduce((f, s) => f * s(step), 1);
}

/** The LR schedule kinds parseSchedule reads (not the pipeline schedules of src/pipeline/schedule). */
export const LR_SCHEDULE_KINDS = ["constant", "step", "cosine"] as const;

/**
 * Parses a CLI schedule: "constant", "step:<stepSize>[:<gamma>]", "cosine[:<minFactor>]", each
 * optionally prefixed by "warmup:<steps>+" (e.g. "warmup:100+cosine"). `totalSteps` is the length
 * of the run; the cosine part decays over the steps after the warm-up.
 */
export function parseSchedule(text: string, totalSteps: number): LrSchedule {
  const bad = (why: string): never => {
    throw new Error(`bad lr schedule '${text}': ${why}; valid: constant, step:N[:GAMMA], cosine[:MIN], optionally prefixed by warmup:N+`);
  };
  let rest = text.trim();
  let warm = 0;
  const m = /^warmup:(\d+)\+(.*)$/.exec(rest);
  if (m) { warm = Number(m[1]); rest = m[2]; }
  const [kind, ...args] = rest.split(":");
  const nums = args.map(Number);
  if (nums.some((x) => !Number.isFinite(x))) bad("arguments must be numbers");
  let inner: LrSchedule;
  switch (kind) {
    case "constant": if (nums.length) bad("constant takes no arguments"); inner = constantLr(); break;
    case "step": if (nums.length < 1 || nums.length > 2) bad("step needs step:N or step:N:GAMMA"); inner = stepLr(nums[0], nums[1] ?? 0.1); break;
    case "cosine": if (nums.length > 1) bad("cosine takes at most a min factor"); inner = cosineLr(Math.max(1, totalSteps - warm), nums[0] ?? 0); break;
    default: return bad(`unknown kind '${kind}'`);
  }
  return warm > 0 ? linearWarmup(warm, inner) : inner;
}
