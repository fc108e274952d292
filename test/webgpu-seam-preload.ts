// Preloaded into CLI processes by the webgpu tests (NODE_OPTIONS=--import): PIPEWRIGHT_TEST_WEBGPU=
// no-package|no-adapter makes the webgpu backend behave as on a machine without the package or adapter.
import { webgpuSeam } from "../src/backend/webgpu/seam.js";

const simulate = process.env.PIPEWRIGHT_TEST_WEBGPU;
if (simulate === "no-package" || simulate === "no-adapter") webgpuSeam.simulate = simulate;
else if (simulate) throw new Error(`PIPEWRIGHT_TEST_WEBGPU='${simulate}' must be no-package or no-adapter`);

export const WEBGPU_SEAM_NODE_OPTIONS = `--import=${import.meta.url}`;
