// Model specifications: plain JSON (so a worker thread or a checkpoint can rebuild the model), with
// documented defaults and validation that names the bad field and what is allowed.

export const MODEL_NAMES = ["mlp", "cnn", "vit", "gpt"] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** Flatten -> (Linear -> ReLU) per hidden size -> Linear. Input images are flattened to `input`. */
export interface MlpSpec { name: "mlp"; input?: number; hidden?: number[]; classes?: number }

export const CNN_NORMS = ["none", "batch", "group"] as const;
export type CnnNorm = (typeof CNN_NORMS)[number];
/**
 * Per entry of `channels`: conv3x3(pad 1) -> [norm] -> ReLU -> MaxPool2; then Flatten -> Linear(hidden)
 * -> ReLU -> Linear(classes). Group norm uses `groups` groups (default gcd(channels, 8)). With batch
 * norm the convolutions have no bias (BatchNorm's mean subtraction would cancel it).
 */
export interface CnnSpec {
  name: "cnn"; image?: number; inChannels?: number; channels?: number[]; hidden?: number; classes?: number;
  norm?: CnnNorm; groups?: number;
}

/**
 * Patch embedding (Conv2d kernel = stride = patch, tokens + learned position embedding, no cls
 * token), `depth` pre-norm blocks, LayerNorm, mean over tokens, Linear head.
 */
export interface VitSpec {
  name: "vit"; image?: number; inChannels?: number; patch?: number; dim?: number; depth?: number; heads?: number;
  classes?: number;
}

/** Token + position embedding, `depth` causal pre-norm blocks, LayerNorm, Linear head -> [B, T, vocab]. */
export interface GptSpec { name: "gpt"; vocab?: number; dim?: number; heads?: number; depth?: number; context?: number }

export type ModelSpec = MlpSpec | CnnSpec | VitSpec | GptSpec;

export const DEFAULTS = {
  mlp: { name: "mlp", input: 784, hidden: [1024, 1024], classes: 10 },
  cnn: { name: "cnn", image: 28, inChannels: 1, channels: [32, 64], hidden: 128, classes: 10, norm: "none", groups: 0 },
  vit: { name: "vit", image: 28, inChannels: 1, patch: 7, dim: 64, depth: 4, heads: 4, classes: 10 },
  gpt: { name: "gpt", vocab: 256, dim: 256, heads: 4, depth: 4, context: 128 },
} as const satisfies { [K in ModelName]: Required<Extract<ModelSpec, { name: K }>> };

export type ResolvedSpec<K extends ModelName = ModelName> = Required<Extract<ModelSpec, { name: K }>>;

function fail(name: string, msg: string): never { throw new Error(`model '${name}': ${msg}`); }

function posInt(name: string, field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(name, `${field} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function posIntList(name: string, field: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0) fail(name, `${field} must be a non-empty list of positive integers, got ${JSON.stringify(v)}`);
  return v.map((x, i) => posInt(name, `${field}[${i}]`, x));
}

function gcd(a: number, b: number): number { return b === 0 ? a : gcd(b, a % b); }

/** Fills defaults and validates; unknown names and fields are errors listing the valid ones. */
export function resolveSpec(spec: ModelSpec | { name: string; [k: string]: unknown }): ResolvedSpec {
  if (typeof spec !== "object" || spec === null) throw new Error(`model spec must be an object like {"name": "mlp"}, got ${JSON.stringify(spec)}`);
  const name = spec.name as string;
  if (!(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new Error(`unknown model '${String(name)}'; valid models: ${MODEL_NAMES.join(", ")}`);
  }
  const defaults = DEFAULTS[name as ModelName] as Record<string, unknown>;
  for (const k of Object.keys(spec)) {
    if (!(k in defaults)) fail(name, `unknown field '${k}'; valid fields: ${Object.keys(defaults).join(", ")}`);
  }
  const s = { ...defaults, ...(spec as object) } as Record<string, unknown>;
  switch (name as ModelName) {
    case "mlp": {
      const hidden = Array.isArray(s.hidden) && s.hidden.length === 0 ? [] : posIntList(name, "hidden", s.hidden);
      return { name: "mlp", input: posInt(name, "input", s.input), hidden, classes: posInt(name, "classes", s.classes) };
    }
    case "cnn": {
      const channels = posIntList(name, "channels", s.channels);
      const image = posInt(name, "image", s.image);
      if (image % 2 ** channels.length !== 0) {
        fail(name, `image ${image} must be divisible by 2^${channels.length} (one 2x2 max-pool per conv stage)`);
      }
      const norm = s.norm as CnnNorm;
      if (!CNN_NORMS.includes(norm)) fail(name, `norm must be one of ${CNN_NORMS.join(", ")}, got ${JSON.stringify(s.norm)}`);
      const groups = s.groups === 0 ? 0 : posInt(name, "groups", s.groups);
      if (norm === "group") {
        for (const c of channels) {
          const g = groups || gcd(c, 8);
          if (c % g !== 0) fail(name, `group norm: channels ${c} not divisible by groups ${g}`);
        }
      }
      return { name: "cnn", image, inChannels: posInt(name, "inChannels", s.inChannels), channels,
        hidden: posInt(name, "hidden", s.hidden), classes: posInt(name, "classes", s.classes), norm, groups };
    }
    case "vit": {
      const image = posInt(name, "image", s.image), patch = posInt(name, "patch", s.patch);
      const dim = posInt(name, "dim", s.dim), heads = posInt(name, "heads", s.heads);
      if (image % patch !== 0) fail(name, `image ${image} must be divisible by patch ${patch}`);
      if (dim % heads !== 0) fail(name, `dim ${dim} must be divisible by heads ${heads}`);
      return { name: "vit", image, inChannels: posInt(name, "inChannels", s.inChannels), patch, dim,
        depth: posInt(name, "depth", s.depth), heads, classes: posInt(name, "classes", s.classes) };
    }
    case "gpt": {
      const dim = posInt(name, "dim", s.dim), heads = posInt(name, "heads", s.heads);
      if (dim % heads !== 0) fail(name, `dim ${dim} must be divisible by heads ${heads}`);
      return { name: "gpt", vocab: posInt(name, "vocab", s.vocab), dim, heads, depth: posInt(name, "depth", s.depth),
        context: posInt(name, "context", s.context) };
    }
  }
}

/** Group count used by the cnn's group norm for a stage with `channels` channels. */
export function cnnGroups(spec: ResolvedSpec<"cnn">, channels: number): number {
  return spec.groups || gcd(channels, 8);
}

/** Shape of one batch of model input: images [B, C, H, W] (mlp: [B, 1, 28, 28] flattened inside), ids [B, T]. */
export function inputShape(spec: ModelSpec, batch: number): number[] {
  const s = resolveSpec(spec);
  switch (s.name) {
    case "mlp": return [batch, s.input];
    case "cnn": return [batch, s.inChannels, s.image, s.image];
    case "vit": return [batch, s.inChannels, s.image, s.image];
    case "gpt": return [batch, s.context];
  }
}

/** Number of classes per prediction (gpt: vocab, one per position). */
export function numClasses(spec: ModelSpec): number {
  const s = resolveSpec(spec);
  return s.name === "gpt" ? s.vocab : s.classes;
}

/** One line describing a spec's size, e.g. "gpt depth 12, dim 768, heads 12, context 256, vocab 256". */
export function describeSpec(spec: ResolvedSpec): string {
  const { name, ...rest } = spec as ResolvedSpec & Record<string, unknown>;
  return `${name} ${Object.entries(rest).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("-") : String(v)}`).join(", ")}`;
}
