/**
 * Log-bucketed latency histogram (HDR-like), values in integer microseconds.
 *
 * Design: values below 64 µs get one exact bucket each; above that every
 * power of two is split into 32 linear sub-buckets, so any recorded value is
 * known to within ~3 %. A fixed 896-slot Uint32Array covers up to ~35 min,
 * costs 3.5 KB, records in O(1) without allocation, and merges by adding
 * arrays, which is how per-worker histograms are combined in the runner.
 */

const SUB_BITS = 5;
const SUB = 1 << SUB_BITS; // 32 sub-buckets per power of two
const EXACT = SUB * 2; // 0..63 recorded exactly
const MAX_EXP = 31;
export const BUCKETS = (MAX_EXP - SUB_BITS + 1) * SUB + SUB;

/** Bucket index of a (non-negative, integer) microsecond value. */
export function bucketOf(v: number): number {
  if (v < EXACT) return v < 0 ? 0 : v | 0;
  if (v >= 2 ** MAX_EXP) v = 2 ** MAX_EXP - 1; // clamp: ~35 minutes
  const e = 31 - Math.clz32(v); // floor(log2 v), >= 6 here
  return (e - SUB_BITS) * SUB + (v >>> (e - SUB_BITS));
}

/** Representative value (bucket midpoint) of a bucket index. */
export function valueOf(idx: number): number {
  if (idx < EXACT) return idx;
  const e = Math.floor(idx / SUB) + SUB_BITS - 1;
  const s = idx - (e - SUB_BITS) * SUB;
  const lo = s * 2 ** (e - SUB_BITS);
  const width = 2 ** (e - SUB_BITS);
  return lo + (width - 1) / 2;
}

/** Plain-data form that survives postMessage / JSON. */
export interface HistogramData {
  counts: number[];
  count: number;
  max: number;
  sum: number;
}

export class Histogram {
  counts = new Uint32Array(BUCKETS);
  count = 0;
  max = 0;
  sum = 0;

  record(micros: number): void {
    this.counts[bucketOf(micros)]++;
    this.count++;
    this.sum += micros;
    if (micros > this.max) this.max = micros;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }

  merge(other: Histogram | HistogramData): void {
    const c = other.counts;
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += c[i] ?? 0;
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** Value at quantile q in [0,1], in µs; exact max for q = 1, 0 if empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  toData(): HistogramData {
    return {
      counts: Array.from(this.counts),
      count: this.count,
      max: this.max,
      sum: this.sum,
    };
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }
}
