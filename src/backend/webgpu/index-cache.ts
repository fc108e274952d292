// Plain Int32Arrays that several kernels read (class targets in cross-entropy's forward and
// backward, token ids in a gather and its scatter-add) keep their device copy while their values stay
// the same: each use compares them with a snapshot taken at upload, so a host write is never missed.
// The copy is freed when the array is collected or its values changed.

interface Entry { id: number; snapshot: Int32Array }

export class IndexCache {
  private readonly entries = new WeakMap<Int32Array, Entry>();
  private readonly registry: FinalizationRegistry<number>;

  constructor(private readonly retire: (id: number) => void) {
    this.registry = new FinalizationRegistry(retire);
  }

  /** The buffer holding a's current values, or undefined (then upload a and call keep). */
  find(a: Int32Array): number | undefined {
    const e = this.entries.get(a);
    if (!e) return undefined;
    if (e.snapshot.length === a.length && e.snapshot.every((v, i) => v === a[i])) return e.id;
    this.entries.delete(a);
    this.registry.unregister(e);
    this.retire(e.id);
    return undefined;
  }

  keep(a: Int32Array, id: number): void {
    const e: Entry = { id, snapshot: a.slice() };
    this.entries.set(a, e);
    this.registry.register(a, id, e);
  }
}
