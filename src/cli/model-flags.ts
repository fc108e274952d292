// Model sizing flags shared by `train`, `bench engine` and `bench pipeline`: --layers, --width,
// --heads, --context, --hidden, --channels, --patch, or a ModelSpec JSON file (--model-config).
// They resolve into one validated ModelSpec; a flag that does not size the chosen model, a bad
// value or a bad config field is a UsageError naming it and what is allowed.
import { readFileSync } from "node:fs";
import { UsageError, type FlagSpecs, type FlagValues } from "./args.js";
import { DEFAULTS, MODEL_NAMES, resolveSpec, type ModelName, type ResolvedSpec } from "../nn/models/spec.js";
import { flagList } from "../util/describe.js";

export const MODEL_SIZE_FLAGS = {
  layers: { type: "int", min: 1, meta: "L", help: "model size: gpt/vit transformer blocks (depth), mlp hidden layers (default: the model's standard size)" },
  width: { type: "int", min: 1, meta: "D", help: "model size: gpt/vit embedding width (dim), mlp hidden width, cnn fully-connected hidden width" },
  heads: { type: "int", min: 1, meta: "H", help: "model size: gpt/vit attention heads (must divide --width)" },
  context: { type: "int", min: 1, meta: "T", help: "model size: gpt context length (tokens per sequence)" },
  hidden: { type: "list", meta: "N,N,...", help: "model size: mlp hidden widths, e.g. 512,256 (instead of --layers/--width)" },
  channels: { type: "list", meta: "N,N,...", help: "model size: cnn output channels per conv stage, e.g. 32,64,128 (28 must divide by 2^stages)" },
  patch: { type: "int", min: 1, meta: "P", help: "model size: vit patch side (must divide the 28-pixel image)" },
  "model-config": { type: "string", meta: "FILE", help: "model size from a ModelSpec JSON file, e.g. {\"name\": \"gpt\", \"depth\": 12, \"dim\": 768}; sizing flags given override its fields" },
} as const satisfies FlagSpecs;
type SizeFlagValues = FlagValues<typeof MODEL_SIZE_FLAGS>;

export type ModelSizeFlag = keyof typeof MODEL_SIZE_FLAGS;

/** Which sizing flags each model takes (--model-config applies to all). */
const SIZE_FLAGS_OF: Record<ModelName, readonly ModelSizeFlag[]> = {
  gpt: ["layers", "width", "heads", "context"],
  vit: ["layers", "width", "heads", "patch"],
  mlp: ["layers", "width", "hidden"],
  cnn: ["channels", "width"],
};

/** The spec field each flag sets, per model (mlp's --layers/--width build `hidden` together). */
const FIELD_OF: Record<ModelName, Partial<Record<ModelSizeFlag, string>>> = {
  gpt: { layers: "depth", width: "dim", heads: "heads", context: "context" },
  vit: { layers: "depth", width: "dim", heads: "heads", patch: "patch" },
  mlp: { layers: "hidden (count)", width: "hidden (width)", hidden: "hidden" },
  cnn: { channels: "channels", width: "hidden" },
};

/** Reads and parses a --model-config file: a JSON object (a ModelSpec, `name` optional if --model is given). */
function readModelConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`--model-config ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--model-config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new UsageError(`--model-config ${path}: must hold a JSON object like {"name": "gpt", "depth": 12}, got ${JSON.stringify(raw)}`);
  }
  return raw as Record<string, unknown>;
}

function positiveList(flag: string, values: readonly string[]): number[] {
  if (values.length === 0) throw new UsageError(`--${flag} needs at least one positive integer, e.g. --${flag} 32,64`);
  return values.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} '${values.join(",")}': '${s}' is not a positive integer; e.g. --${flag} 32,64`);
    return n;
  });
}

/** The spec fields the flags set on top of `base` (a config file's fields or the model's defaults). */
function fieldsFromFlags(model: ModelName, f: SizeFlagValues, flags: readonly ModelSizeFlag[], base: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of flags) {
    const v = f[n];
    if (Array.isArray(v)) out[FIELD_OF[model][n]!] = positiveList(n, v);
    else if (model !== "mlp") out[FIELD_OF[model][n]!] = v;
  }
  if (model === "mlp" && (flags.includes("layers") || flags.includes("width"))) {
    if (flags.includes("hidden")) throw new UsageError("mlp: give either --hidden N,N,... or --layers/--width, not both");
    const baseHidden = Array.isArray(base.hidden) ? (base.hidden as number[]) : [...DEFAULTS.mlp.hidden];
    const layers = (flags.includes("layers") ? f.layers : undefined) ?? baseHidden.length;
    const width = (flags.includes("width") ? f.width : undefined) ?? baseHidden[0] ?? DEFAULTS.mlp.hidden[0];
    out.hidden = new Array<number>(layers).fill(width);
  }
  return out;
}

/**
 * The model spec the flags describe: `--model-config` (if given) with sizing flags on top, validated
 * by resolveSpec. `model` is --model, or a resumed checkpoint's model (`modelFrom` says which, for
 * errors); undefined when the config file is to name it. Returns undefined when no sizing flag or
 * config is given (the model's standard size).
 */
export function modelSpecFromFlags(model: ModelName | undefined, f: SizeFlagValues, given: ReadonlySet<string>,
  modelFrom = "--model is"): ResolvedSpec | undefined {
  const flags = (Object.keys(MODEL_SIZE_FLAGS) as ModelSizeFlag[]).filter((n) => n !== "model-config" && given.has(n));
  const configPath = given.has("model-config") ? f["model-config"] : undefined;
  if (!flags.length && configPath === undefined) return undefined;
  const config = configPath !== undefined ? readModelConfig(configPath) : undefined;
  const where = configPath !== undefined ? `--model-config ${configPath}: ` : "";
  const named = config?.name;
  if (named !== undefined && !(MODEL_NAMES as readonly unknown[]).includes(named)) {
    throw new UsageError(`${where}unknown model ${JSON.stringify(named)} in field 'name'; valid models: ${MODEL_NAMES.join(", ")}`);
  }
  if (named !== undefined && model !== undefined && named !== model) {
    throw new UsageError(`${where}the file describes a ${String(named)} model but ${modelFrom} ${model}`);
  }
  const name = model ?? (named as ModelName | undefined);
  if (name === undefined) {
    throw new UsageError(`${where}${configPath !== undefined ? "the file has no 'name'" : `${flagList(flags)} size${flags.length > 1 ? "" : "s"} a model`}; ` +
      `give --model (one of: ${MODEL_NAMES.join(", ")})`);
  }
  const stray = flags.filter((n) => !SIZE_FLAGS_OF[name].includes(n));
  if (stray.length) {
    throw new UsageError(`${flagList(stray)} ${stray.length > 1 ? "do" : "does"} not size the ${name} model; ${name} takes ${flagList(SIZE_FLAGS_OF[name])}` +
      ` or --model-config FILE`);
  }
  const base = { ...(config ?? {}), name };
  const spec = { ...base, ...fieldsFromFlags(name, f, flags, base) };
  try {
    return resolveSpec(spec);
  } catch (e) {
    const mapping = Object.entries(FIELD_OF[name]).filter(([n]) => flags.includes(n as ModelSizeFlag)).map(([n, field]) => `--${n} sets ${field}`);
    throw new UsageError(`${where}${(e as Error).message}${mapping.length ? ` (${mapping.join(", ")})` : ""}`);
  }
}
