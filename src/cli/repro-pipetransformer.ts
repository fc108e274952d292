// Placeholder until the experiment lands: fails loudly rather than pretending.
export async function runReproPipetransformer(_argv: string[]): Promise<number> {
  throw new Error("pipewright repro pipetransformer is not implemented yet");
}
