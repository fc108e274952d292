// Placeholder until the experiment lands: fails loudly rather than pretending.
export async function runReproPipemare(_argv: string[]): Promise<number> {
  throw new Error("pipewright repro pipemare is not implemented yet");
}
