// AutoCache (PipeTransformer): the frozen prefix's output per training sample, keyed by
// the sample's dataset index, so later epochs skip the prefix's forward. Enabled once at least
// `minFrozen` (3) layers are frozen; emptied whenever the frozen boundary moves (the prefix then
// computes something else). Valid only while the prefix is a pure function of the sample: no dropout
// in training mode and no random augmentation in front of it.
//
// Memory: one Float32Array for all samples, allocated when the cache (re)starts, after checking the
// bound, so the bound is exact and the run fails before filling rather than midway.
import { Tensor } from "../../tensor/tensor.js";
import { fmt, numel } from "../../tensor/shape.js";

export interface CacheConfig {
  /** Upper bound on the cache's bytes. */
  maxBytes: number;
  /** Frozen layers needed before caching starts (default 3). */
  minFrozen?: number;
  /** Flag named in the error as the way to raise the bound (default "--cache-mb"). */
  boundFlag?: string;
}

export type CacheUpdate = "disabled" | "enabled" | "kept" | "invalidated";

export interface CacheStats { hits: number; misses: number; stored: number; invalidations: number }

const MB = 1024 * 1024;

/** Bytes to cache `samples` outputs of shape `sampleShape` (float32). */
export function cacheBytes(samples: number, sampleShape: readonly number[]): number {
  return samples * numel(sampleShape) * Float32Array.BYTES_PER_ELEMENT;
}

/** Throws a message naming the need, the bound and both ways out when the cache would not fit. */
export function checkCacheFits(samples: number, sampleShape: readonly number[], maxBytes: number, boundFlag = "--cache-mb"): void {
  const need = cacheBytes(samples, sampleShape);
  if (need > maxBytes) {
    throw new Error(
      `AutoCache: caching the frozen prefix's output for ${samples} samples of shape ${fmt(sampleShape)} needs ` +
      `${(need / MB).toFixed(1)} MB, more than the bound of ${(maxBytes / MB).toFixed(1)} MB; ` +
      `run with --cache off, or raise the bound (${boundFlag} ${Math.ceil(need / MB)} or more)`,
    );
  }
}

export class ActivationCache {
  readonly maxBytes: number;
  readonly minFrozen: number;
  readonly boundFlag: string;
  private frozenAt = 0;
  private shape: readonly number[] = [];
  private rowSize = 0;
  private store: Float32Array | null = null;
  private present: Uint8Array | null = null;
  readonly stats: CacheStats = { hits: 0, misses: 0, stored: 0, invalidations: 0 };

  constructor(config: CacheConfig) {
    if (!(config.maxBytes >= 0) || !Number.isFinite(config.maxBytes)) throw new Error(`AutoCache: byte bound ${config.maxBytes} must be a finite number >= 0`);
    const minFrozen = config.minFrozen ?? 3;
    if (!Number.isInteger(minFrozen) || minFrozen < 1) throw new Error(`AutoCache: minFrozen ${minFrozen} must be a positive integer`);
    this.maxBytes = config.maxBytes;
    this.minFrozen = minFrozen;
    this.boundFlag = config.boundFlag ?? "--cache-mb";
  }

  /** Whether lookups can hit (caching is on for the current boundary). */
  get active(): boolean { return this.store !== null; }

  /** Frozen layers the cached outputs belong to (0 when inactive). */
  get boundary(): number { return this.active ? this.frozenAt : 0; }

  /** Output shape of one sample (without the batch dimension). */
  get sampleShape(): readonly number[] { return this.shape; }

  /** Bytes held. */
  get bytes(): number { return this.store ? this.store.byteLength : 0; }

  /**
   * Call whenever the frozen prefix may have changed (each epoch start or after each freeze):
   * `samples` = dataset size (keys 0..samples-1), `sampleShape` = the prefix's per-sample output shape.
   */
  update(frozenLayers: number, samples: number, sampleShape: readonly number[]): CacheUpdate {
    if (!Number.isInteger(frozenLayers) || frozenLayers < 0) throw new Error(`AutoCache: frozen layer count ${frozenLayers} must be an integer >= 0`);
    if (!Number.isInteger(samples) || samples < 1) throw new Error(`AutoCache: sample count ${samples} must be a positive integer`);
    if (frozenLayers < this.minFrozen) {
      const was = this.active;
      this.clear();
      if (was) this.stats.invalidations++;
      return "disabled";
    }
    const sameShape = sampleShape.length === this.shape.length && sampleShape.every((d, i) => d === this.shape[i]);
    if (this.store && frozenLayers === this.frozenAt && sameShape && this.present!.length === samples) return "kept";
    const was = this.active;
    this.clear();
    checkCacheFits(samples, sampleShape, this.maxBytes, this.boundFlag);
    this.frozenAt = frozenLayers;
    this.shape = [...sampleShape];
    this.rowSize = numel(sampleShape);
    this.store = new Float32Array(samples * this.rowSize);
    this.present = new Uint8Array(samples);
    if (was) { this.stats.invalidations++; return "invalidated"; }
    return "enabled";
  }

  /** Drops every entry and switches caching off until the next `update`. */
  clear(): void {
    this.store = null;
    this.present = null;
    this.frozenAt = 0;
  }

  private checkIndex(i: number): void {
    const n = this.present?.length ?? 0;
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`AutoCache: sample index ${i} out of range [0, ${n})`);
  }

  has(sample: number): boolean {
    if (!this.present) return false;
    this.checkIndex(sample);
    return this.present[sample] === 1;
  }

  /**
   * The cached outputs of `indices` as one tensor [B, ...sampleShape] (a copy), or null unless every
   * sample is cached (the batch is then recomputed whole and stored).
   */
  lookup(indices: readonly number[]): Tensor | null {
    if (!this.store || !this.present) return null;
    for (const i of indices) this.checkIndex(i);
    if (!indices.every((i) => this.present![i] === 1)) { this.stats.misses += indices.length; return null; }
    const out = new Float32Array(indices.length * this.rowSize);
    indices.forEach((i, k) => out.set(this.store!.subarray(i * this.rowSize, (i + 1) * this.rowSize), k * this.rowSize));
    this.stats.hits += indices.length;
    return new Tensor(out, [indices.length, ...this.shape]);
  }

  /** Stores rows of `outputs` [B, ...sampleShape] under `indices` (no-op while inactive). */
  put(indices: readonly number[], outputs: Tensor): void {
    if (!this.store || !this.present) return;
    const want = [indices.length, ...this.shape];
    if (outputs.shape.length !== want.length || outputs.shape.some((d, i) => d !== want[i])) {
      throw new Error(`AutoCache: outputs ${fmt(outputs.shape)} do not match ${indices.length} samples of shape ${fmt(this.shape)}, expected ${fmt(want)}`);
    }
    for (const i of indices) this.checkIndex(i);
    indices.forEach((i, k) => {
      this.store!.set(outputs.data.subarray(k * this.rowSize, (k + 1) * this.rowSize), i * this.rowSize);
      if (this.present![i] === 0) { this.present![i] = 1; this.stats.stored++; }
    });
  }
}
