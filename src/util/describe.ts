// Names things in error messages: a value's kind ("got Float32Array", not "got object"), a list of CLI flags.

/**
 * What `v` is, for "expected X, got Y" messages: "null", "undefined", "array", the constructor's name
 * for other objects ("Float32Array", "Map", "Object"; "object" for one without a prototype), and
 * typeof otherwise ("number", "string", "function", ...).
 */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return "array";
  if (typeof v === "object") {
    const name = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === "string" && name !== "" ? name : "object";
  }
  return typeof v;
}

/** Flag names as a message lists them: ["lr", "batch"] -> "--lr, --batch". */
export function flagList(names: readonly string[]): string {
  return names.map((n) => `--${n}`).join(", ");
}
