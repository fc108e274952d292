// How every command prints a result: one JSON object per line with --json (what other tools read),
// else its line of text.

/** Writes `record` as one JSON line when `json`, else `text`. */
export function emit(json: boolean | undefined, record: object, text: string): void {
  process.stdout.write((json ? JSON.stringify(record) : text) + "\n");
}
