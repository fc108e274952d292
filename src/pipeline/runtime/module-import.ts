// Importing a named export of a user's ES module, for model and loss sources: every worker thread
// (and MPI rank) imports the same module by URL. Errors name the module, the export and the cause.
import { isAbsolute } from "node:path";
import { pathToFileURL } from "node:url";

/** A file URL as given, an absolute path as a file URL; anything else is an error naming it. */
export function moduleUrl(module: string, what: string): string {
  if (typeof module !== "string" || module === "") throw new Error(`${what}: 'module' must be a file URL or an absolute path (e.g. new URL("./model.js", import.meta.url)), got ${JSON.stringify(module)}`);
  if (/^(file|data):/.test(module)) return module;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new Error(`${what}: module '${module}' must be a file URL or an absolute path (e.g. new URL("./model.js", import.meta.url)), not a relative path: workers resolve it from another directory`);
}

/** The export `name` of `module`, which must be a function. */
export async function importFunction(module: string, name: string, what: string, shape: string): Promise<(...args: unknown[]) => unknown> {
  const url = moduleUrl(module, what);
  let ns: Record<string, unknown>;
  try {
    ns = await import(url) as Record<string, unknown>;
  } catch (e) {
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

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return `a ${typeof v} (${String(v).slice(0, 40)})`;
}
