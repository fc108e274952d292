// Importing a named export of a user's ES module, for model and loss sources: every worker thread
// (and MPI rank) imports the same module by URL. Errors name the module, the export and the cause.
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";

/** A file URL as given, an absolute path as a file URL; anything else is an error naming it. */
export function moduleUrl(module: string, what: string): string {
  if (typeof module !== "string" || module === "") throw new Error(`${what}: 'module' must be a file URL or an absolute path (e.g. import.meta.url), got ${JSON.stringify(module)}`);
  if (/^(file|data):/.test(module)) return module;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new Error(`${what}: module '${module}' must be a file URL or an absolute path (e.g. import.meta.url), not a relative path: workers resolve it from another directory`);
}

/** The export `name` of `module`, which must be a function. */
export async function importFunction(module: string, name: string, what: string, shape: string): Promise<(...args: unknown[]) => unknown> {
  const url = moduleUrl(module, what);
  let ns: Record<string, unknown>;
  try {
    ns = await importOnce(url, module, what);
  } catch (e) {
    if ((e as { selfImport?: boolean }).selfImport) throw e;
    throw new Error(`${what}: cannot import module '${module}': ${(e as Error).message ?? String(e)}`, { cause: e });
  }
  if (!(name in ns)) {
    const names = Object.keys(ns);
    throw new Error(`${what}: module '${module}' has no export '${name}'; its exports: ${names.length ? names.join(", ") : "(none)"}`);
  }
  const f = ns[name];
  if (typeof f !== "function") {
    throw new Error(`${what}: export '${name}' of module '${module}' is ${describe(f)}, not a function ${shape}`);
  }
  return f as (...args: unknown[]) => unknown;
}

/** Seconds after which importing the running main script counts as waiting for itself. */
const SELF_IMPORT_WAIT_S = 3;

/**
 * import(url). The script that calls createPipeline often names itself (import.meta.url); if it
 * does so from a top-level await, its import waits for its own evaluation forever and Node exits
 * silently (code 13). Only for that module, a timer turns the wait into an error saying what to do.
 */
async function importOnce(url: string, module: string, what: string): Promise<Record<string, unknown>> {
  const main = process.argv[1] ? pathToFileURL(process.argv[1]).href : null;
  const p = import(url) as Promise<Record<string, unknown>>;
  if (url !== main) return p;
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what}: importing module '${module}' (the running script) did not finish in ${SELF_IMPORT_WAIT_S} s: ` +
      "it waits for its own top-level await. Start training without top-level await (main().catch(...)) or put the model in a module of its own"), { selfImport: true })), SELF_IMPORT_WAIT_S * 1000);
  });
  try {
    return await Promise.race([p, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return `a ${typeof v} (${String(v).slice(0, 40)})`;
}
