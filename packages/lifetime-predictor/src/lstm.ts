/**
 * The session-history LSTM predictor. Each request is a sequence of its session's previous
 * output lengths (the last `steps` turns, pre-padded) plus static features (prompt length, new
 * user tokens of this turn, template and tenant means). The network (LSTM → concat static →
 * ReLU dense → linear) is trained with `@tensorflow/tfjs` (pure-JS CPU backend, seeded
 * initialisers, seeded batch sampling, synchronous `optimizer.minimize`), warm-started on a
 * sliding window every `retrainEvery` observations; `predict` runs the hand-written typed-array
 * forward pass ({@link LstmForward}), which agrees with tfjs's within 1e-5.
 *
 * @see tensorflow/tfjs:tfjs-layers/src/layers/recurrent.ts
 */
import type { LifetimeFeatures } from '@kvmgr/core';
import { createRng, invalidArgument, requireInRange, requireNonNegativeInt, requirePositiveInt } from '@kvmgr/core';
import type { Rng } from '@kvmgr/core';
import { createRequire } from 'node:module';
import type * as tf from '@tensorflow/tfjs';
import { BasePredictor } from './base-predictor.js';
import type { BasePredictorOptions, Estimate } from './base-predictor.js';
import { FEATURE_DIM, FeatureEncoder } from './feature-encoder.js';
import { LstmForward } from './lstm-forward.js';
import type { LstmWeights } from './lstm-forward.js';
import { SlidingWindow } from './sliding-window.js';

let tfModule: typeof tf | undefined;

/**
 * tfjs is loaded on first use (it takes about a second), so importing this package costs
 * nothing for callers that never build an LSTM.
 */
function loadTfjs(): typeof tf {
  tfModule ??= createRequire(import.meta.url)('@tensorflow/tfjs') as typeof tf;
  return tfModule;
}

/** Options of {@link LstmPredictor}. */
export interface LstmPredictorOptions extends BasePredictorOptions {
  /** Session turns fed to the LSTM (most recent). @default 8 */
  readonly steps?: number;
  /** LSTM units. @default 8 */
  readonly units?: number;
  /** Dense hidden width. @default 16 */
  readonly hidden?: number;
  /** Training window, requests. @default 4096 */
  readonly window?: number;
  /** Retrain after this many observations. @default 1024 */
  readonly retrainEvery?: number;
  /** Observations before the first fit. @default 256 */
  readonly minTrain?: number;
  /** Minibatch steps per (re)training. @default 40 */
  readonly trainSteps?: number;
  /** Minibatch size. @default 64 */
  readonly batchSize?: number;
  /** Adam learning rate. @default 0.02 */
  readonly learningRate?: number;
  /**
   * Regression target: `log` fits `log1p(tokens) / 8` (the scale of the inputs), `raw` fits
   * `tokens / 512`.
   * @default 'raw'
   */
  readonly target?: 'log' | 'raw';
  /** Seed of initialisers and batch sampling. @default 1 */
  readonly seed?: number;
}

/** Features per time step: `[log1p(output) / 8, 1]` (the 1 marks a real, unpadded turn). */
const INPUT_DIM = 2;
/** Static features (see `encode`). */
const STATIC_DIM = 8;
/** `raw` outputs are learnt in units of this many tokens. */
const OUTPUT_SCALE = 512;
/** `log` outputs are `log1p(tokens) / LOG_SCALE`. */
const LOG_SCALE = 8;

function logScaled(v: number, div: number): number {
  return v >= 0 ? Math.log1p(v) / div : 0;
}

/**
 * Session-history LSTM, trained by tfjs, served by a typed-array forward pass.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export class LstmPredictor extends BasePredictor {
  readonly name = 'lstm';
  private readonly steps: number;
  private readonly window: number;
  private readonly retrainEvery: number;
  private readonly minTrain: number;
  private readonly trainSteps: number;
  private readonly batchSize: number;
  private readonly logTarget: boolean;
  private readonly rng: Rng;
  private readonly encoder = new FeatureEncoder();
  private readonly row = new Float64Array(FEATURE_DIM);
  private readonly seqBuf: Float64Array;
  private readonly statBuf = new Float64Array(STATIC_DIM);
  private readonly seqs: Float32Array;
  private readonly stats: Float32Array;
  private readonly targets: Float32Array;
  private readonly median = new SlidingWindow(1024);
  private readonly model: tf.LayersModel;
  private readonly optimizer: tf.Optimizer;
  private forward: LstmForward | undefined;
  private head = 0;
  private count = 0;
  private sinceFit = 0;
  private fits = 0;

  constructor(options: LstmPredictorOptions = {}) {
    super(options);
    const tf = loadTfjs();
    this.steps = requirePositiveInt('steps', options.steps ?? 8);
    const units = requirePositiveInt('units', options.units ?? 8);
    const hidden = requirePositiveInt('hidden', options.hidden ?? 16);
    this.window = requirePositiveInt('window', options.window ?? 4096);
    this.retrainEvery = requirePositiveInt('retrainEvery', options.retrainEvery ?? 1024);
    this.minTrain = requirePositiveInt('minTrain', options.minTrain ?? 256);
    this.trainSteps = requireNonNegativeInt('trainSteps', options.trainSteps ?? 40);
    this.batchSize = requirePositiveInt('batchSize', options.batchSize ?? 64);
    const lr = requireInRange('learningRate', options.learningRate ?? 0.02, 1e-6, 1);
    const seed = requireNonNegativeInt('seed', options.seed ?? 1);
    const target = options.target ?? 'raw';
    if (target !== 'log' && target !== 'raw') throw invalidArgument('target', target, '"log" or "raw"');
    this.logTarget = target === 'log';
    this.rng = createRng(seed);
    this.seqBuf = new Float64Array(this.steps * INPUT_DIM);
    this.seqs = new Float32Array(this.window * this.steps * INPUT_DIM);
    this.stats = new Float32Array(this.window * STATIC_DIM);
    this.targets = new Float32Array(this.window);
    tf.setBackend('cpu');
    // The pure-JS CPU backend is chosen on purpose (tfjs-node downloads binaries at install);
    // its first-use banner urging tfjs-node would only be noise in CLI output.
    (tf.backend() as { firstUse?: boolean }).firstUse = false;
    this.model = (() => {
      const seqIn = tf.input({ shape: [this.steps, INPUT_DIM] });
      const statIn = tf.input({ shape: [STATIC_DIM] });
      const h = tf.layers
        .lstm({
          units,
          recurrentActivation: 'sigmoid',
          kernelInitializer: tf.initializers.glorotUniform({ seed }),
          recurrentInitializer: tf.initializers.orthogonal({ seed: seed + 1 }),
          unitForgetBias: true,
        })
        .apply(seqIn) as tf.SymbolicTensor;
      const cat = tf.layers.concatenate().apply([h, statIn]) as tf.SymbolicTensor;
      const d = tf.layers
        .dense({ units: hidden, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) })
        .apply(cat) as tf.SymbolicTensor;
      const out = tf.layers
        .dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 3 }) })
        .apply(d) as tf.SymbolicTensor;
      return tf.model({ inputs: [seqIn, statIn], outputs: out });
    })();
    this.optimizer = tf.train.adam(lr);
  }

  /** Number of completed (re)trainings. */
  get trainings(): number {
    return this.fits;
  }

  protected estimate(features: LifetimeFeatures, out: Estimate): void {
    if (this.forward === undefined) {
      const m = this.median.size === 0 ? 256 : this.median.quantile(0.5);
      out[0] = m;
      out[1] = m + 1;
      return;
    }
    this.encode(features);
    const y = this.forward.run(this.seqBuf, this.steps, this.statBuf) * OUTPUT_SCALE;
    out[0] = Math.max(y , 0);
    out[1] = out[0] + 1;
  }

  protected learn(features: LifetimeFeatures, actual: number): void {
    this.encode(features);
    const s = this.head;
    for (let i = 0; i < this.seqBuf.length; i++) this.seqs[s * this.seqBuf.length + i] = this.seqBuf[i] as number;
    for (let i = 0; i < STATIC_DIM; i++) this.stats[s * STATIC_DIM + i] = this.statBuf[i] as number;
    this.targets[s] = this.logTarget ? Math.log1p(actual) / LOG_SCALE : actual / OUTPUT_SCALE;
    this.head = (this.head + 1) % this.window;
    if (this.count < this.window) this.count++;
    this.median.push(actual);
    this.encoder.learn(features, actual);
    this.sinceFit++;
    if (this.count >= this.minTrain && (this.forward === undefined || this.sinceFit >= this.retrainEvery)) this.retrain();
  }

  /** Trains `trainSteps` minibatches on the window now and refreshes the hot-path weights. */
  retrain(): void {
    const tf = loadTfjs();
    this.sinceFit = 0;
    if (this.count === 0) return;
    const n = this.count;
    const b = Math.min(this.batchSize, n);
    const seqLen = this.steps * INPUT_DIM;
    const xs = new Float32Array(b * seqLen);
    const ss = new Float32Array(b * STATIC_DIM);
    const ys = new Float32Array(b);
    for (let step = 0; step < this.trainSteps; step++) {
      for (let k = 0; k < b; k++) {
        const r = this.rng.int(0, n - 1);
        xs.set(this.seqs.subarray(r * seqLen, (r + 1) * seqLen), k * seqLen);
        ss.set(this.stats.subarray(r * STATIC_DIM, (r + 1) * STATIC_DIM), k * STATIC_DIM);
        ys[k] = this.targets[r] as number;
      }
      tf.tidy(() => {
        const x = tf.tensor3d(xs, [b, this.steps, INPUT_DIM]);
        const st = tf.tensor2d(ss, [b, STATIC_DIM]);
        const y = tf.tensor2d(ys, [b, 1]);
        this.optimizer.minimize(() => tf.losses.meanSquaredError(y, this.model.apply([x, st], { training: true }) as tf.Tensor) as tf.Scalar);
      });
    }
    this.forward = new LstmForward(this.extractWeights(), this.steps);
    this.fits++;
  }

  /**
   * The raw network output for `features` (network units; see {@link LstmPredictor.toTokens})
   * from the hand-written forward pass; NaN before the first training. For checking against
   * {@link LstmPredictor.forwardTfjs}.
   */
  forwardHandWritten(features: LifetimeFeatures): number {
    if (this.forward === undefined) return Number.NaN;
    this.encode(features);
    return this.forward.run(this.seqBuf, this.steps, this.statBuf);
  }

  /**
   * Maps a raw network output to tokens.
   * @param y - network output.
   */
  toTokens(y: number): number {
    return this.logTarget ? Math.expm1(y * LOG_SCALE) : y * OUTPUT_SCALE;
  }

  /** The same raw network output computed by tfjs's `model.predict` (slow; for checks). */
  forwardTfjs(features: LifetimeFeatures): number {
    const tf = loadTfjs();
    this.encode(features);
    return tf.tidy(() => {
      const x = tf.tensor3d(Float32Array.from(this.seqBuf), [1, this.steps, INPUT_DIM]);
      const st = tf.tensor2d(Float32Array.from(this.statBuf), [1, STATIC_DIM]);
      const y = this.model.predict([x, st]) as tf.Tensor;
      return y.dataSync()[0] as number;
    });
  }

  /** Releases the tfjs tensors (model and optimizer state). The predictor is unusable after. */
  dispose(): void {
    this.model.dispose();
    this.optimizer.dispose();
  }

  private extractWeights(): LstmWeights {
    const w = this.model.getWeights().map((t) => Float64Array.from(t.dataSync()));
    const lstm = this.model.layers.find((l) => l.getClassName() === 'LSTM');
    const dense = this.model.layers.filter((l) => l.getClassName() === 'Dense');
    const units = (lstm?.getConfig().units as number | undefined) ?? 0;
    const hidden = (dense[0]?.getConfig().units as number | undefined) ?? 0;
    return {
      inputDim: INPUT_DIM,
      units,
      staticDim: STATIC_DIM,
      hidden,
      kernel: w[0] as Float64Array,
      recurrentKernel: w[1] as Float64Array,
      bias: w[2] as Float64Array,
      denseKernel: w[3] as Float64Array,
      denseBias: w[4] as Float64Array,
      outKernel: w[5] as Float64Array,
      outBias: w[6] as Float64Array,
    };
  }

  private encode(features: LifetimeFeatures): void {
    const seq = this.seqBuf;
    seq.fill(0);
    const h = features.sessionHistory ?? [];
    const take = Math.min(h.length, this.steps);
    for (let k = 0; k < take; k++) {
      const t = this.steps - take + k;
      seq[t * INPUT_DIM] = Math.log1p(h[h.length - take + k] as number) / LOG_SCALE;
      seq[t * INPUT_DIM + 1] = 1;
    }
    const r = this.row;
    this.encoder.encode(features, r);
    const st = this.statBuf;
    st[0] = logScaled(features.promptTokens, 12);
    st[1] = logScaled(r[9] as number, 12);
    st[2] = (r[9] as number) >= 0 ? 1 : 0;
    st[3] = logScaled(r[7] as number, 8);
    st[4] = logScaled(r[10] as number, 8);
    st[5] = logScaled(features.maxTokens ?? -1, 12);
    // summary skip connections: the last and mean previous output (0 without history)
    st[6] = logScaled(r[2] as number, LOG_SCALE);
    st[7] = logScaled(r[3] as number, LOG_SCALE);
  }
}
