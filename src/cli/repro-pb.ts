// Placeholder until the experiment lands: fails loudly rather than pretending.
export async function runReproPb(_argv: string[]): Promise<number> {
  throw new Error("pipewright repro pb is not implemented yet");
}
