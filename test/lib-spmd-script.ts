// A user's SPMD script for test/spmd.test.ts: every MPI rank runs it with the same arguments
// (`mpirun -n 2 node lib-spmd-script.js processes SCHEDULE CKPT`), or one process runs it with
// executor inline. It trains the user model of lib-user-model.ts with its hand-written MSE through
// createPipeline, then prints one JSON line per rank (losses, eval output) and saves a checkpoint.
// Variant "mismatch": rank 1 asks for other micro-batches (the job must end, naming a rank);
// variant "reload": loadStateDict(stateDict()) after training, then one more step; variant
// "replicas": on threads or processes, 2 data-parallel replicas of the pipeline (4 threads or ranks).
import { createPipeline, type ExecutorName, type ScheduleName, type Tensor } from "../src/index.js";
import { regressionBatches } from "./lib-user-model.js";

const [executor, schedule, ckpt, variant] = process.argv.slice(2) as [ExecutorName, ScheduleName, string, string?];
const MODULE = new URL("./lib-user-model.js", import.meta.url).href;
const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? 0);

const batches = (): { x: Tensor; y: Tensor }[] => regressionBatches(36, 12);

async function main(): Promise<void> {
  const pipe = await createPipeline({
    model: { module: MODULE, export: "buildMlp", args: { sizes: [6, 10, 10, 10, 2], seed: 5 } },
    loss: { module: MODULE, export: "userMse" }, schedule, stages: 2,
    microbatches: variant === "mismatch" && rank === 1 ? 2 : 4,
    optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 }, executor,
    replicas: variant === "replicas" && executor !== "inline" ? 2 : undefined,
  });
  const losses: number[] = [];
  for (const b of batches()) losses.push(await pipe.step(b.x, b.y));
  if (variant === "reload") {
    // Collective: the processes executor restarts with the given weights, optimizer state kept.
    await pipe.loadStateDict(await pipe.stateDict());
    losses.push(await pipe.step(batches()[1].x, batches()[1].y));
  }
  const out = await pipe.eval(batches()[0].x);
  await pipe.save(ckpt);
  process.stdout.write(JSON.stringify({ rank, losses, eval: [...out.data] }) + "\n");
  await pipe.close();
}

// `node --test dist/test/` also loads this fixture (without arguments): then it does nothing.
if (executor !== undefined) await main();
