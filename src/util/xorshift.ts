/**
 * xorshift32: a tiny deterministic pseudo-random stream, so that generated data (benchmark
 * package pools, test corpora) is the same on every machine and every run. Not for anything that
 * needs real randomness.
 */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}
