/**
 * The hand-written inference path of the session LSTM: one Keras-convention LSTM layer (gate
 * order i, f, c, o; sigmoid recurrent activation; tanh cell activation) followed by a ReLU dense
 * layer over `[h_T, static features]` and a linear output, on `Float64Array`s with preallocated
 * scratch, so `predict` allocates nothing. Weights are copied from the tfjs model after training.
 *
 * @see Hochreiter, Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997.
 * @see tensorflow/tfjs:tfjs-layers/src/layers/recurrent.ts (`LSTMCell.call`).
 */

/** Weights of the network, row-major as tfjs stores them. */
export interface LstmWeights {
  /** Features per time step. */
  readonly inputDim: number;
  /** LSTM units. */
  readonly units: number;
  /** Static (per-request) features. */
  readonly staticDim: number;
  /** Hidden dense width. */
  readonly hidden: number;
  /** [inputDim, 4·units] */
  readonly kernel: Float64Array;
  /** [units, 4·units] */
  readonly recurrentKernel: Float64Array;
  /** [4·units] */
  readonly bias: Float64Array;
  /** [units + staticDim, hidden] */
  readonly denseKernel: Float64Array;
  /** [hidden] */
  readonly denseBias: Float64Array;
  /** [hidden, 1] */
  readonly outKernel: Float64Array;
  /** [1] */
  readonly outBias: Float64Array;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Allocation-free forward pass over preallocated scratch buffers. */
export class LstmForward {
  readonly weights: LstmWeights;
  private readonly h: Float64Array;
  private readonly c: Float64Array;
  private readonly z: Float64Array;
  private readonly cat: Float64Array;
  /** State after k all-zero (padding) steps from the zero state, k = 0…maxSteps: [h | c]. */
  private readonly padStates: Float64Array[] = [];

  /**
   * @param weights - network weights.
   * @param maxSteps - the longest sequence `run` will see; padding-step states up to it are
   *   precomputed (a zero input from the zero state depends on the bias only).
   */
  constructor(weights: LstmWeights, maxSteps = 0) {
    this.weights = weights;
    this.h = new Float64Array(weights.units);
    this.c = new Float64Array(weights.units);
    this.z = new Float64Array(4 * weights.units);
    this.cat = new Float64Array(weights.units + weights.staticDim);
    const zero = new Float64Array(weights.inputDim);
    this.h.fill(0);
    this.c.fill(0);
    for (let k = 0; k <= maxSteps; k++) {
      const st = new Float64Array(2 * weights.units);
      st.set(this.h, 0);
      st.set(this.c, weights.units);
      this.padStates.push(st);
      this.step(zero, 0);
    }
  }

  private step(seq: Float64Array, t: number): void {
    const w = this.weights;
    const u = w.units;
    const g4 = 4 * u;
    const { h, c, z } = this;
    for (let j = 0; j < g4; j++) z[j] = w.bias[j] as number;
    for (let i = 0; i < w.inputDim; i++) {
      const xi = seq[t * w.inputDim + i] as number;
      if (xi === 0) continue;
      const row = i * g4;
      for (let j = 0; j < g4; j++) z[j] = (z[j] as number) + xi * (w.kernel[row + j] as number);
    }
    for (let i = 0; i < u; i++) {
      const hi = h[i] as number;
      if (hi === 0) continue;
      const row = i * g4;
      for (let j = 0; j < g4; j++) z[j] = (z[j] as number) + hi * (w.recurrentKernel[row + j] as number);
    }
    for (let j = 0; j < u; j++) {
      const ig = sigmoid(z[j] as number);
      const fg = sigmoid(z[u + j] as number);
      const cc = Math.tanh(z[2 * u + j] as number);
      const og = sigmoid(z[3 * u + j] as number);
      const cj = fg * (c[j] as number) + ig * cc;
      c[j] = cj;
      h[j] = og * Math.tanh(cj);
    }
  }

  /**
   * Runs the network.
   * @param seq - `steps × inputDim` row-major sequence.
   * @param steps - time steps in `seq`.
   * @param stat - `staticDim` static features.
   * @returns the scalar output.
   */
  run(seq: Float64Array, steps: number, stat: Float64Array): number {
    const w = this.weights;
    const u = w.units;
    const { h, c } = this;
    // leading all-zero steps (pre-padding) map to a precomputed state
    let lead = 0;
    while (lead < steps && lead < this.padStates.length - 1) {
      let zero = true;
      for (let i = 0; i < w.inputDim; i++) if (seq[lead * w.inputDim + i] !== 0) zero = false;
      if (!zero) break;
      lead++;
    }
    const st = this.padStates[lead];
    if (st === undefined) {
      h.fill(0);
      c.fill(0);
    } else {
      h.set(st.subarray(0, u));
      c.set(st.subarray(u));
    }
    for (let t = lead; t < steps; t++) this.step(seq, t);
    const cat = this.cat;
    for (let j = 0; j < u; j++) cat[j] = h[j] as number;
    for (let j = 0; j < w.staticDim; j++) cat[u + j] = stat[j] as number;
    let out = w.outBias[0] as number;
    const n = u + w.staticDim;
    for (let k = 0; k < w.hidden; k++) {
      let a = w.denseBias[k] as number;
      for (let j = 0; j < n; j++) a += (cat[j] as number) * (w.denseKernel[j * w.hidden + k] as number);
      if (a > 0) out += a * (w.outKernel[k] as number);
    }
    return out;
  }
}
