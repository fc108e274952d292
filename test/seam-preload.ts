// Preloaded into CLI processes and MPI ranks by tests (NODE_OPTIONS=--import): fills the test seam
// from PIPEWRIGHT_INJECT_FAULT="<unit>:<microbatch>" (that unit throws on that micro-batch) and
// PIPEWRIGHT_TEST_CRASH_SAVE="<save>:<rank>:<point>" (that rank SIGKILLs itself at <point> of its
// <save>-th parted save: mid-part, after-part or before-manifest).
import { testSeam } from "../src/testing/seam.js";

const fault = process.env.PIPEWRIGHT_INJECT_FAULT;
if (fault) {
  const m = /^(\d+):(\d+)$/.exec(fault.trim());
  if (!m) throw new Error(`PIPEWRIGHT_INJECT_FAULT='${fault}' must look like <unit>:<microbatch>, e.g. 4:3`);
  testSeam.faults = [{ unit: Number(m[1]), microbatch: Number(m[2]) }];
}

const crash = process.env.PIPEWRIGHT_TEST_CRASH_SAVE;
if (crash) {
  const m = /^(\d+):(\d+):(mid-part|after-part|before-manifest)$/.exec(crash.trim());
  if (!m) throw new Error(`PIPEWRIGHT_TEST_CRASH_SAVE='${crash}' must look like <save>:<rank>:<mid-part|after-part|before-manifest>`);
  testSeam.crashSave = (save, rank, point) => {
    if (Number(m[1]) === save && Number(m[2]) === rank && m[3] === point) process.kill(process.pid, "SIGKILL");
  };
}

/** NODE_OPTIONS that preload this module (for a test's child processes and MPI ranks). */
export const SEAM_NODE_OPTIONS = `--import=${import.meta.url}`;
