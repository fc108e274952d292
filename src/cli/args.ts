// A small declarative flag parser shared by every command: each flag has a type, a default and
// (optionally) allowed values, so that --help and the error for a bad value come from one place.

export type FlagType = "string" | "int" | "number" | "bool" | "list";

export interface FlagSpec {
  type: FlagType;
  help: string;
  default?: string | number | boolean;
  /** Allowed values for string flags. */
  choices?: readonly string[];
  /** Inclusive lower bound for int/number flags. */
  min?: number;
  /** Placeholder shown in --help, e.g. "N". */
  meta?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  flags: Record<string, FlagSpec>;
  /** Extra lines printed after the flag list (examples). */
  examples?: string[];
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export class UsageError extends Error {}

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

/** Parses argv against the spec. Unknown flags and bad values throw UsageError naming the valid ones. */
export function parseFlags(cmd: CommandSpec, argv: readonly string[]): FlagValues & { help?: boolean } {
  const out: FlagValues = {};
  for (const [name, f] of Object.entries(cmd.flags)) {
    // Defaults go through the same conversion as given values (a list default becomes a list).
    if (f.default !== undefined) out[name] = f.type === "list" ? convert(name, f, String(f.default)) : f.default;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return { ...out, help: true };
    if (!arg.startsWith("--")) {
      throw new UsageError(`pipewright ${cmd.name}: unexpected argument '${arg}'; flags start with --. See --help`);
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    const f = cmd.flags[name];
    if (!f) {
      const valid = Object.keys(cmd.flags).map((n) => `--${n}`).join(", ");
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
  return out;
}

function convert(name: string, f: FlagSpec, value: string): string | number | string[] {
  switch (f.type) {
    case "string":
      if (f.choices && !f.choices.includes(value)) {
        throw new UsageError(`--${name} '${value}' is not valid; choose one of: ${f.choices.join(", ")}`);
      }
      return value;
    case "list":
      return value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    case "int":
    case "number": {
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n) || (f.type === "int" && !Number.isInteger(n))) {
        throw new UsageError(`--${name} '${value}' is not ${f.type === "int" ? "an integer" : "a number"}`);
      }
      if (f.min !== undefined && n < f.min) throw new UsageError(`--${name} ${value} is too small; it must be at least ${f.min}`);
      return n;
    }
    default:
      throw new Error(`unhandled flag type ${String(f.type)}`);
  }
}

export interface Subcommand {
  summary: string;
  run(argv: string[]): number | Promise<number>;
}

/**
 * Dispatches `<prefix> <name> ...` (e.g. `pipewright bench engine`) to a table of subcommands:
 * no name prints the list as a usage error (exit 2), --help prints it (exit 0), an unknown name
 * throws a UsageError naming the valid ones.
 */
export async function runSubcommand(prefix: string, noun: string, table: Record<string, Subcommand>,
  argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    const width = Math.max(...Object.keys(table).map((n) => n.length)) + 4;
    const usage = [`Usage: ${prefix} <${noun}> [flags]`, "",
      ...Object.entries(table).map(([n, s]) => `  ${n.padEnd(width)}${s.summary}`), "",
      `Run \`${prefix} <${noun}> --help\` for its flags.`].join("\n");
    (name === undefined ? process.stderr : process.stdout).write(usage + "\n");
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(table, name) ? table[name] : undefined;
  if (!sub) throw new UsageError(`${prefix}: unknown ${noun} '${name}'; valid: ${Object.keys(table).join(", ")}`);
  return sub.run(rest);
}
