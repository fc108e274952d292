// A small declarative flag parser shared by every command: each flag has a type, a default and
// (optionally) allowed values, so that --help and the error for a bad value come from one place.
// A command declares its spec `as const satisfies CommandSpec`, so that parseFlags types each value
// from its flag (see FlagValues) and commands read them without casts.

type FlagType = "string" | "int" | "number" | "bool" | "list";

export interface FlagSpec {
  readonly type: FlagType;
  readonly help: string;
  readonly default?: string | number | boolean;
  /** Allowed values for string flags, and for each item of a list flag. */
  readonly choices?: readonly string[];
  /** Inclusive lower bound for int/number flags. */
  readonly min?: number;
  /** Placeholder shown in --help, e.g. "N". */
  readonly meta?: string;
  /** Other spellings accepted for `--name`, e.g. "-n" (not shown in --help). */
  readonly aliases?: readonly string[];
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export interface CommandSpec<F extends FlagSpecs = FlagSpecs> {
  readonly name: string;
  readonly summary: string;
  readonly flags: F;
  /** Extra lines printed after the flag list (examples). */
  readonly examples?: readonly string[];
}

type TypeOf<T extends FlagType> = T extends "int" | "number" ? number : T extends "bool" ? boolean : T extends "list" ? string[] : string;
/** A flag's parsed value: a string flag with choices is the union of its choices, a list flag with choices a list of them. */
type FlagValue<S extends FlagSpec> =
  S extends { readonly type: "string"; readonly choices: readonly (infer C extends string)[] } ? C
  : S extends { readonly type: "list"; readonly choices: readonly (infer C extends string)[] } ? C[] : TypeOf<S["type"]>;
type Defaulted<F extends FlagSpecs> = { [K in keyof F]: F[K] extends { readonly default: string | number | boolean } ? K : never }[keyof F];

/**
 * The values parseFlags returns for flags F: a flag with a default is always present, the others
 * are undefined unless given. With the untyped FlagSpecs every key is an optional union.
 */
export type FlagValues<F extends FlagSpecs = FlagSpecs> =
  { -readonly [K in Defaulted<F>]: FlagValue<F[K]> } & { -readonly [K in Exclude<keyof F, Defaulted<F>>]?: FlagValue<F[K]> };

type ParsedFlags<F extends FlagSpecs> = FlagValues<F> & { help?: boolean };

export class UsageError extends Error {}

/**
 * Runs `check` (a check of flag values that lives outside the CLI) and reports what it throws as a
 * usage error, its message after `prefix`; errors that `isUsage` rejects pass through as they are.
 */
export function asUsage<T>(check: () => T, prefix = "", isUsage: (e: unknown) => boolean = () => true): T {
  try {
    return check();
  } catch (e) {
    if (!isUsage(e)) throw e;
    throw new UsageError(`${prefix}${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Names of the flags that appear on the command line (so a resumed run keeps the saved values of the others). */
export function givenFlags(argv: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const a of argv) if (a.startsWith("--")) out.add(a.slice(2).split("=")[0]);
  return out;
}

export function helpText(cmd: CommandSpec): string {
  const lines = [`Usage: pipewright ${cmd.name} [flags]`, "", cmd.summary, "", "Flags:"];
  const entries = Object.entries(cmd.flags);
  const heads = entries.map(([name, f]) => {
    const meta = f.type === "bool" ? "" : ` ${f.meta ?? (f.choices ? f.choices.join("|") : f.type.toUpperCase())}`;
    return `  --${name}${meta}`;
  });
  const width = Math.min(40, Math.max(...heads.map((h) => h.length), 8) + 2);
  entries.forEach(([, f], i) => {
    const def = f.default !== undefined && f.default !== false ? ` (default: ${String(f.default)})` : "";
    lines.push(`${heads[i].padEnd(width)}${f.help}${def}`);
  });
  lines.push(`${"  --help".padEnd(width)}show this help`);
  if (cmd.examples?.length) lines.push("", "Examples:", ...cmd.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

type RawValue = string | number | boolean | string[];

/** Parses argv against the spec. Unknown flags and bad values throw UsageError naming the valid ones. */
export function parseFlags<F extends FlagSpecs>(cmd: CommandSpec<F>, argv: readonly string[]): ParsedFlags<F> {
  const specs: FlagSpecs = cmd.flags;
  const out: Record<string, RawValue> = {};
  const aliases = new Map<string, string>();
  for (const [name, f] of Object.entries(specs)) {
    // Defaults go through the same conversion as given values (a list default becomes a list).
    if (f.default !== undefined) out[name] = f.type === "list" ? convert(name, f, String(f.default)) : f.default;
    for (const a of f.aliases ?? []) aliases.set(a, name);
  }
  // The one cast: `out` holds, per flag of the spec, a value of that flag's type (convert's contract).
  const done = (extra: { help?: boolean }): ParsedFlags<F> => ({ ...out, ...extra }) as ParsedFlags<F>;
  for (let i = 0; i < argv.length; i++) {
    const arg = aliases.has(argv[i]) ? `--${aliases.get(argv[i])}` : argv[i];
    if (arg === "--help" || arg === "-h") return done({ help: true });
    if (!arg.startsWith("--")) {
      throw new UsageError(`pipewright ${cmd.name}: unexpected argument '${arg}'; flags start with --. See --help`);
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    const f = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!f) {
      const valid = Object.keys(specs).map((n) => `--${n}`).join(", ");
      throw new UsageError(`pipewright ${cmd.name}: unknown flag --${name}; valid flags: ${valid}, --help`);
    }
    if (f.type === "bool") {
      if (value === undefined) { out[name] = true; continue; }
      if (!["true", "false", "on", "off"].includes(value)) {
        throw new UsageError(`--${name}=${value}: expected true|false|on|off`);
      }
      out[name] = value === "true" || value === "on";
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length || argv[i + 1].startsWith("--")) throw new UsageError(`--${name} needs a value (${f.help})`);
      value = argv[++i];
    }
    out[name] = convert(name, f, value);
  }
  return done({});
}

/**
 * Parses `FLAGS -- COMMAND ...` (launch): the flags before the first `--` against the spec, and the
 * wrapped command after it, untouched (empty when there is no `--`).
 */
export function parseWrapper<F extends FlagSpecs>(cmd: CommandSpec<F>, argv: readonly string[]): { flags: ParsedFlags<F>; command: string[] } {
  const dd = argv.indexOf("--");
  return { flags: parseFlags(cmd, dd < 0 ? argv : argv.slice(0, dd)), command: dd < 0 ? [] : argv.slice(dd + 1) };
}

function convert(name: string, f: FlagSpec, value: string): RawValue {
  switch (f.type) {
    case "string":
      if (f.choices && !f.choices.includes(value)) {
        throw new UsageError(`--${name} '${value}' is not valid; choose one of: ${f.choices.join(", ")}`);
      }
      return value;
    case "list": {
      const items = value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
      const bad = f.choices && (items.length ? items.find((s) => !f.choices!.includes(s)) : "");
      if (bad !== undefined) throw new UsageError(`--${name} '${bad}' is not valid; choose from ${f.choices!.join(", ")}`);
      return items;
    }
    case "int":
    case "number": {
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n) || (f.type === "int" && !Number.isInteger(n))) {
        throw new UsageError(`--${name} '${value}' is not ${f.type === "int" ? "an integer" : "a number"}`);
      }
      if (f.min !== undefined && n < f.min) throw new UsageError(`--${name} ${value} is too small; it must be at least ${f.min}`);
      return n;
    }
    case "bool":
      throw new Error(`bool flag --${name} has no value to convert`);
  }
}

/**
 * A command's entry point: parses argv against the spec and calls `run` with the values (and argv,
 * for givenFlags), or prints the command's help for --help.
 */
export function command<F extends FlagSpecs>(cmd: CommandSpec<F>,
  run: (f: FlagValues<F>, argv: string[]) => number | Promise<number>): (argv: string[]) => Promise<number> {
  return async (argv) => {
    const f = parseFlags(cmd, argv);
    if (f.help) { process.stdout.write(helpText(cmd) + "\n"); return 0; }
    return run(f, argv);
  };
}

export interface Subcommand {
  summary: string;
  run(argv: string[]): number | Promise<number>;
}

/** A subcommand whose module is imported only when it runs (so --help never loads the addon or worker code). */
export function lazy(summary: string, load: () => Promise<(argv: string[]) => number | Promise<number>>): Subcommand {
  return { summary, run: async (argv) => (await load())(argv) };
}

/** How a table's usage and errors are worded where the defaults do not fit (the top-level commands). */
interface TableText { intro?: readonly string[]; valid?: string; more?: string }

/**
 * Dispatches `<prefix> <name> ...` (e.g. `pipewright bench engine`) to a table of subcommands:
 * no name prints the list as a usage error (exit 2), --help prints it (exit 0), an unknown name
 * throws a UsageError naming the valid ones.
 */
export async function runSubcommand(prefix: string, noun: string, table: Record<string, Subcommand>,
  argv: readonly string[], text: TableText = {}): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    const width = Math.max(...Object.keys(table).map((n) => n.length)) + 4;
    const usage = [`Usage: ${prefix} <${noun}> [flags]`, "", ...(text.intro ?? []),
      ...Object.entries(table).map(([n, s]) => `  ${n.padEnd(width)}${s.summary}`), "",
      text.more ?? `Run \`${prefix} <${noun}> --help\` for its flags.`].join("\n");
    (name === undefined ? process.stderr : process.stdout).write(usage + "\n");
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!sub) throw new UsageError(`${prefix}: unknown ${noun} '${name}'; ${text.valid ?? "valid"}: ${Object.keys(table).join(", ")}`);
  return sub.run(rest);
}
