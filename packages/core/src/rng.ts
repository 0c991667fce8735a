/**
 * The one seeded PRNG every kvmgr simulation uses: xoroshiro128+ from `pure-rand`
 * (the generator behind fast-check). Same seed → same stream on every platform.
 *
 * @see https://github.com/dubzzz/pure-rand
 */
import { xoroshiro128plus } from 'pure-rand';
import { invalidArgument } from './errors.js';

/** A seeded random stream. Not cryptographic. */
export interface Rng {
  /** The seed it was created with. */
  readonly seed: number;
  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** Uniform integer in [min, max] (inclusive). */
  int(min: number, max: number): number;
  /** Exponential variate with the given mean (e.g. Poisson inter-arrival gaps). */
  exponential(mean: number): number;
  /** Picks one element uniformly. Throws `KVMGR_INVALID_ARGUMENT` on an empty array. */
  pick<T>(items: readonly T[]): T;
  /** Shuffles in place (Fisher–Yates) and returns the array. */
  shuffle<T>(items: T[]): T[];
  /** An independent stream derived from this one (for per-instance/per-worker use). */
  fork(): Rng;
}

const TWO_POW_32 = 4294967296;

/**
 * Creates a seeded PRNG.
 * @param seed - any safe integer (only the low 32 bits are used).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `seed` is not a safe integer.
 */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw invalidArgument('seed', seed, 'a safe integer');
  const gen = xoroshiro128plus(seed | 0);
  const next = (): number => (gen.unsafeNext() >>> 0) / TWO_POW_32;
  const rng: Rng = {
    seed,
    next,
    int(min, max) {
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
        throw invalidArgument('int range', [min, max], 'integers with min <= max');
      }
      return min + Math.floor(next() * (max - min + 1));
    },
    exponential(mean) {
      return -Math.log(1 - next()) * mean;
    },
    pick(items) {
      if (items.length === 0) throw invalidArgument('items', items, 'a non-empty array');
      return items[Math.floor(next() * items.length)] as (typeof items)[number];
    },
    shuffle(items) {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        const t = items[i] as (typeof items)[number];
        items[i] = items[j] as (typeof items)[number];
        items[j] = t;
      }
      return items;
    },
    fork() {
      return createRng(gen.unsafeNext() >>> 0);
    },
  };
  return rng;
}
