// A seeded random source for tests and benchmarks (mulberry32): the same seed gives the same
// schedule on every machine, so a failing seed can be replayed.

/** A function returning floats in [0, 1) from `seed` (an integer). */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
