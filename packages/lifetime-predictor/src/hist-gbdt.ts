/**
 * Histogram gradient-boosted regression trees (squared loss), on typed arrays: features are
 * bucketed into at most `maxBins` quantile bins, each node's best split is found from per-bin
 * gradient sums, and trees are stored flat (`feature`, `threshold`, `left`, `right`, `value`)
 * so that inference is a few comparisons per tree with no allocation.
 *
 * @see Ke et al., "LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017.
 * @see scikit-learn `HistGradientBoostingRegressor` (sklearn/ensemble/_hist_gradient_boosting).
 */
import { invalidArgument, requireInRange, requirePositiveInt } from '@kvmgr/core';

/** Training options of {@link trainHistGbdt}. */
export interface HistGbdtOptions {
  /** Boosting rounds (trees). @default 60 */
  readonly trees?: number;
  /** Maximum tree depth. @default 4 */
  readonly maxDepth?: number;
  /** Shrinkage applied to each tree. @default 0.15 */
  readonly learningRate?: number;
  /** Minimum rows in a leaf. @default 32 */
  readonly minLeaf?: number;
  /** Maximum bins per feature (≤ 255). @default 32 */
  readonly maxBins?: number;
  /** L2 regularisation λ on leaf values. @default 1 */
  readonly l2?: number;
}

/** A trained ensemble: flat node arrays plus the base score. */
export interface HistGbdtModel {
  readonly base: number;
  /** Node count of all trees together. */
  readonly nodes: number;
  /** Root node index of each tree. */
  readonly roots: Int32Array;
  /** Split feature per node, −1 for leaves. */
  readonly feature: Int32Array;
  /** Go left when `x[feature] <= threshold`. */
  readonly threshold: Float64Array;
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** Leaf output (learning rate applied). */
  readonly value: Float64Array;
}

/**
 * Evaluates a model on one feature row.
 * @param model - from {@link trainHistGbdt}.
 * @param x - feature row, length = the training dimension.
 */
export function predictHistGbdt(model: HistGbdtModel, x: Float64Array): number {
  let s = model.base;
  const { roots, feature, threshold, left, right, value } = model;
  for (let t = 0; t < roots.length; t++) {
    let n = roots[t] as number;
    let f = feature[n] as number;
    while (f >= 0) {
      n = (x[f] as number) <= (threshold[n] as number) ? (left[n] as number) : (right[n] as number);
      f = feature[n] as number;
    }
    s += value[n] as number;
  }
  return s;
}

/**
 * Trains a histogram GBDT on squared loss.
 * @param x - row-major rows × dim matrix.
 * @param y - targets, length rows.
 * @param dim - features per row.
 * @param options - see {@link HistGbdtOptions}.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when shapes disagree, rows is 0, or an option is bad.
 */
export function trainHistGbdt(x: Float64Array, y: Float64Array, dim: number, options: HistGbdtOptions = {}): HistGbdtModel {
  requirePositiveInt('dim', dim);
  const rows = y.length;
  if (rows === 0 || x.length !== rows * dim) {
    throw invalidArgument('x', `${x.length} values`, `rows*dim = ${rows}*${dim} values with rows > 0`);
  }
  const nTrees = requirePositiveInt('trees', options.trees ?? 60);
  const maxDepth = requirePositiveInt('maxDepth', options.maxDepth ?? 4);
  const lr = requireInRange('learningRate', options.learningRate ?? 0.15, 1e-6, 1);
  const minLeaf = requirePositiveInt('minLeaf', options.minLeaf ?? 32);
  const maxBins = requireInRange('maxBins', options.maxBins ?? 32, 2, 255);
  const l2 = requireInRange('l2', options.l2 ?? 1, 0, 1e9);

  // Bin edges per feature from the sorted column.
  const cuts: Float64Array[] = [];
  const binned = new Uint8Array(rows * dim);
  const col = new Float64Array(rows);
  for (let f = 0; f < dim; f++) {
    for (let i = 0; i < rows; i++) col[i] = x[i * dim + f] as number;
    const sorted = Float64Array.from(col).sort();
    const c: number[] = [];
    for (let b = 1; b < maxBins; b++) {
      const v = sorted[Math.min(rows - 1, Math.floor((b * rows) / maxBins))] as number;
      if (c.length === 0 || v > (c[c.length - 1] as number)) c.push(v);
    }
    // the largest value never needs a cut: nothing lies above it
    if (c.length > 0 && (c[c.length - 1] as number) >= (sorted[rows - 1] as number)) c.pop();
    const cf = Float64Array.from(c);
    cuts.push(cf);
    for (let i = 0; i < rows; i++) {
      const v = col[i] as number;
      let lo = 0;
      let hi = cf.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((cf[mid] as number) < v) lo = mid + 1;
        else hi = mid;
      }
      binned[i * dim + f] = lo;
    }
  }

  let base = 0;
  for (let i = 0; i < rows; i++) base += y[i] as number;
  base /= rows;
  const pred = new Float64Array(rows).fill(base);
  const grad = new Float64Array(rows);

  const maxNodesPerTree = (1 << (maxDepth + 1)) - 1;
  const cap = nTrees * maxNodesPerTree;
  const feature = new Int32Array(cap).fill(-1);
  const threshold = new Float64Array(cap);
  const left = new Int32Array(cap);
  const right = new Int32Array(cap);
  const value = new Float64Array(cap);
  const roots = new Int32Array(nTrees);
  let nodes = 0;

  const idx = new Int32Array(rows);
  const tmp = new Int32Array(rows);
  const histG = new Float64Array(dim * 256);
  const histN = new Int32Array(dim * 256);
  // stack of [node, start, end, depth]
  const stack: number[] = [];

  for (let t = 0; t < nTrees; t++) {
    for (let i = 0; i < rows; i++) {
      grad[i] = (pred[i] as number) - (y[i] as number);
      idx[i] = i;
    }
    const root = nodes++;
    roots[t] = root;
    stack.push(root, 0, rows, 0);
    while (stack.length > 0) {
      const depth = stack.pop() as number;
      const end = stack.pop() as number;
      const start = stack.pop() as number;
      const node = stack.pop() as number;
      let G = 0;
      for (let k = start; k < end; k++) G += grad[idx[k] as number] as number;
      const n = end - start;
      const leafValue = (-G / (n + l2)) * lr;
      value[node] = leafValue;
      feature[node] = -1;
      if (depth >= maxDepth || n < 2 * minLeaf) continue;
      histG.fill(0);
      histN.fill(0);
      for (let k = start; k < end; k++) {
        const r = idx[k] as number;
        const g = grad[r] as number;
        const rowOff = r * dim;
        for (let f = 0; f < dim; f++) {
          const h = f * 256 + (binned[rowOff + f] as number);
          histG[h] = (histG[h] as number) + g;
          histN[h] = (histN[h] as number) + 1;
        }
      }
      const parentScore = (G * G) / (n + l2);
      let bestGain = 1e-12;
      let bestF = -1;
      let bestB = -1;
      for (let f = 0; f < dim; f++) {
        const nb = (cuts[f] as Float64Array).length;
        let gl = 0;
        let nl = 0;
        for (let b = 0; b < nb; b++) {
          gl += histG[f * 256 + b] as number;
          nl += histN[f * 256 + b] as number;
          const nr = n - nl;
          if (nl < minLeaf) continue;
          if (nr < minLeaf) break;
          const gr = G - gl;
          const gain = (gl * gl) / (nl + l2) + (gr * gr) / (nr + l2) - parentScore;
          if (gain > bestGain) {
            bestGain = gain;
            bestF = f;
            bestB = b;
          }
        }
      }
      if (bestF < 0) continue;
      // partition idx[start, end) by bin <= bestB, stable
      let a = start;
      let z = 0;
      for (let k = start; k < end; k++) {
        const r = idx[k] as number;
        if ((binned[r * dim + bestF] as number) <= bestB) idx[a++] = r;
        else tmp[z++] = r;
      }
      for (let k = 0; k < z; k++) idx[a + k] = tmp[k] as number;
      const l = nodes++;
      const rr = nodes++;
      feature[node] = bestF;
      threshold[node] = (cuts[bestF] as Float64Array)[bestB] as number;
      left[node] = l;
      right[node] = rr;
      stack.push(rr, a, end, depth + 1, l, start, a, depth + 1);
    }
    // update predictions with this tree
    const model = { base: 0, nodes, roots: roots.subarray(t, t + 1), feature, threshold, left, right, value };
    const row = new Float64Array(dim);
    for (let i = 0; i < rows; i++) {
      for (let f = 0; f < dim; f++) row[f] = x[i * dim + f] as number;
      pred[i] = (pred[i] as number) + predictHistGbdt(model, row);
    }
  }
  return {
    base,
    nodes,
    roots,
    feature: feature.slice(0, nodes),
    threshold: threshold.slice(0, nodes),
    left: left.slice(0, nodes),
    right: right.slice(0, nodes),
    value: value.slice(0, nodes),
  };
}
