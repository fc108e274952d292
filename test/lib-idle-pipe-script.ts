// A user's script for test/idle-pipe.test.ts: a threads pipeline that trains two steps (and asks
// for its weights in between) and then forgets pipe.close(). It prints one JSON line after the
// last step; the process must then end by itself.
import { createPipeline } from "../src/index.js";
import { lossCheckData } from "./lib-loss-check.js";

const MODULE = new URL("./lib-loss-check.js", import.meta.url).href;

async function main(): Promise<void> {
  const pipe = await createPipeline({
    model: { module: MODULE, export: "buildModel" }, loss: { module: MODULE, export: "naiveMse" },
    stages: 2, microbatches: 2, optimizer: { name: "sgd", lr: 0.1 }, executor: "threads",
  });
  const { x, y } = lossCheckData(8, true);
  const losses = [await pipe.step(x, y)];
  const weights = (await pipe.stateDict()).size;
  losses.push(await pipe.step(x, y));
  process.stdout.write(JSON.stringify({ losses, weights }) + "\n");
  // no pipe.close(): the idle worker threads must not keep the process alive
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
