/**
 * Kendall's τ-b rank correlation in O(n log n) (Knight's algorithm: sort by x, then count the
 * discordant pairs as the swaps of a merge sort by y, with tie corrections).
 *
 * @see W. R. Knight, "A Computer Method for Calculating Kendall's Tau with Ungrouped Data",
 *   JASA 61 (1966).
 * @see scipy `scipy/stats/_stats_py.py` `kendalltau`.
 */
import { invalidArgument } from '@kvmgr/core';

/**
 * τ-b of two equally long samples.
 * @param x - first sample.
 * @param y - second sample, same length.
 * @returns τ-b in [−1, 1]; 0 when either sample is constant or n < 2 (τ undefined).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when lengths differ or a value is NaN.
 */
export function kendallTau(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (y.length !== n) throw invalidArgument('y.length', y.length, `equal to x.length (${n})`);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(x[i]) || Number.isNaN(y[i])) throw invalidArgument(`sample[${i}]`, Number.NaN, 'a number');
  }
  if (n < 2) return 0;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => (x[a] as number) - (x[b] as number) || (y[a] as number) - (y[b] as number));
  let n1 = 0;
  let n3 = 0;
  let tx = 1;
  let txy = 1;
  for (let i = 1; i < n; i++) {
    const a = order[i - 1] as number;
    const b = order[i] as number;
    if (x[a] === x[b]) {
      tx++;
      if (y[a] === y[b]) txy++;
      else {
        n3 += (txy * (txy - 1)) / 2;
        txy = 1;
      }
    } else {
      n1 += (tx * (tx - 1)) / 2;
      n3 += (txy * (txy - 1)) / 2;
      tx = 1;
      txy = 1;
    }
  }
  n1 += (tx * (tx - 1)) / 2;
  n3 += (txy * (txy - 1)) / 2;
  // merge sort the y values (in x order), counting swaps
  let ys = new Float64Array(n);
  for (let i = 0; i < n; i++) ys[i] = y[order[i] as number] as number;
  let buf = new Float64Array(n);
  let swaps = 0;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if ((ys[j] as number) < (ys[i] as number)) {
          buf[k++] = ys[j++] as number;
          swaps += mid - i;
        } else buf[k++] = ys[i++] as number;
      }
      while (i < mid) buf[k++] = ys[i++] as number;
      while (j < hi) buf[k++] = ys[j++] as number;
    }
    const t = ys;
    ys = buf;
    buf = t;
  }
  let n2 = 0;
  let ty = 1;
  for (let i = 1; i < n; i++) {
    if (ys[i] === ys[i - 1]) ty++;
    else {
      n2 += (ty * (ty - 1)) / 2;
      ty = 1;
    }
  }
  n2 += (ty * (ty - 1)) / 2;
  const n0 = (n * (n - 1)) / 2;
  const denom = Math.sqrt((n0 - n1) * (n0 - n2));
  if (denom === 0) return 0;
  return (n0 - n1 - n2 + n3 - 2 * swaps) / denom;
}
