// Plain arrays that several kernels read (an input batch in a layer's forward and its weight
// gradient, class targets in cross-entropy's forward and backward, token ids in a gather and its
// scatter-add) keep their device copy while their values stay the same: each use compares the bits
// with a snapshot taken at upload, so a host write is never missed. The copy is freed when the
// array is collected, when its values changed, or when newer copies pass the word budget: a
// collected array's finalizer runs only when the event loop turns, which a training loop may not
// let it do for a whole epoch of fresh batches.

export type Plain = Float32Array | Int32Array;

interface Entry { id: number; snapshot: Int32Array; words: number; retired: boolean }

/** The array's bits (a float's -0 and NaN payloads included). */
function bits(a: Plain): Int32Array {
  return a instanceof Int32Array ? a : new Int32Array(a.buffer, a.byteOffset, a.length);
}

function same(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class UploadCache {
  private readonly entries = new WeakMap<Plain, Entry>();
  private readonly registry = new FinalizationRegistry<Entry>((e) => this.drop(e));
  /** Copies oldest first (retired ones are left out now and then), how many are live, and their words. */
  private queue: Entry[] = [];
  private live = 0;
  private words = 0;

  /** `retire` frees a device copy; past `budgetWords` (default 2^24: 64 MiB) the oldest copies go first. */
  constructor(private readonly retire: (id: number) => void, private readonly budgetWords = 1 << 24) {}

  /** The buffer holding a's current values (`host`: its memory), or undefined (then upload and call keep). */
  find(a: Plain, host: Plain): number | undefined {
    const e = this.entries.get(a);
    if (!e) return undefined;
    if (!e.retired && same(e.snapshot, bits(host))) return e.id;
    this.entries.delete(a);
    this.drop(e);
    return undefined;
  }

  keep(a: Plain, host: Plain, id: number): void {
    const e: Entry = { id, snapshot: bits(host).slice(), words: host.length, retired: false };
    this.entries.set(a, e);
    this.registry.register(a, e, e);
    if (this.queue.length > 2 * this.live + 16) this.queue = this.queue.filter((q) => !q.retired);
    this.queue.push(e);
    this.live++;
    this.words += e.words;
    while (this.words > this.budgetWords && this.queue.length > 1) this.drop(this.queue.shift()!);
  }

  private drop(e: Entry): void {
    if (e.retired) return;
    e.retired = true;
    e.snapshot = new Int32Array(0);
    this.live--;
    this.words -= e.words;
    this.registry.unregister(e);
    this.retire(e.id);
  }
}
