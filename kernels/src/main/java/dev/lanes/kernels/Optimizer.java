package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * One optimizer step on a flat parameter segment and its gradient, with the optimizer's state
 * segments beside them (all {@code n} floats, updated in place), following PyTorch's
 * {@code torch.optim} definitions. {@code weightDecay} is L2 regularization added to the gradient
 * ({@code g + wd p}), except in {@link #adamw}, where it is decoupled ({@code p -= lr wd p} first).
 *
 * <ul>
 *   <li>{@link #sgd}: {@code p -= lr g}.
 *   <li>{@link #momentum}: {@code v = mu v + g}; {@code p -= lr v}, or with Nesterov
 *       {@code p -= lr (g + mu v)}. A zero velocity makes the first step PyTorch's.
 *   <li>{@link #adagrad}: {@code s += g^2}; {@code p -= lr g / (sqrt(s) + eps)}.
 *   <li>{@link #rmsprop}: {@code a = alpha a + (1 - alpha) g^2}; {@code p -= lr g / (sqrt(a) + eps)}.
 *   <li>{@link #adam}, {@link #adamw}: {@code m = b1 m + (1 - b1) g}, {@code v = b2 v + (1 - b2) g^2},
 *       {@code p -= lr mhat / (sqrt(vhat) + eps)} with the bias corrections
 *       {@code mhat = m / (1 - b1^t)}, {@code vhat = v / (1 - b2^t)}, t the 1-based step.
 *   <li>{@link #clipGlobalNorm}: the L2 norm over many gradient segments, computed once, then every
 *       segment scaled by {@code maxNorm / (norm + 1e-6)} if that is below 1 (PyTorch's
 *       {@code clip_grad_norm_}).
 * </ul>
 * These loops are memory-bound (Adam moves 28 bytes per parameter), so each step is one masked
 * vector operation; all arguments are checked before anything is written.
 */
public final class Optimizer {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private Optimizer() {}

  private static FloatVector load(MemorySegment s, long offset, long i, VectorMask<Float> m) {
    return FloatVector.fromMemorySegment(SPECIES, s, 4 * (offset + i), ORDER, m);
  }

  /** {@code p -= lr (g + wd p)}. */
  public static void sgd(long n, float lr, float weightDecay, MemorySegment param, long paramOffset,
      MemorySegment grad, long gradOffset) {
    check(n, param, paramOffset, grad, gradOffset, null, 0, null, 0);
    FloatVector decay = FloatVector.broadcast(SPECIES, weightDecay);
    FloatVector negativeLr = FloatVector.broadcast(SPECIES, -lr);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector p = load(param, paramOffset, i, m);
      FloatVector g = p.fma(decay, load(grad, gradOffset, i, m));
      g.fma(negativeLr, p).intoMemorySegment(param, 4 * (paramOffset + i), ORDER, m);
    }
  }

  /** Heavy-ball or Nesterov momentum. */
  public static void momentum(long n, float lr, float momentum, float weightDecay, boolean nesterov,
      MemorySegment param, long paramOffset, MemorySegment grad, long gradOffset, MemorySegment velocity,
      long velocityOffset) {
    check(n, param, paramOffset, grad, gradOffset, velocity, velocityOffset, null, 0);
    FloatVector decay = FloatVector.broadcast(SPECIES, weightDecay);
    FloatVector negativeLr = FloatVector.broadcast(SPECIES, -lr);
    FloatVector mu = FloatVector.broadcast(SPECIES, momentum);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector p = load(param, paramOffset, i, m);
      FloatVector g = p.fma(decay, load(grad, gradOffset, i, m));
      FloatVector v = load(velocity, velocityOffset, i, m).fma(mu, g);
      FloatVector step = nesterov ? v.fma(mu, g) : v;
      v.intoMemorySegment(velocity, 4 * (velocityOffset + i), ORDER, m);
      step.fma(negativeLr, p).intoMemorySegment(param, 4 * (paramOffset + i), ORDER, m);
    }
  }

  /** AdaGrad with the running sum of squared gradients. */
  public static void adagrad(long n, float lr, float eps, float weightDecay, MemorySegment param, long paramOffset,
      MemorySegment grad, long gradOffset, MemorySegment sumSquares, long sumSquaresOffset) {
    check(n, param, paramOffset, grad, gradOffset, sumSquares, sumSquaresOffset, null, 0);
    FloatVector decay = FloatVector.broadcast(SPECIES, weightDecay);
    FloatVector negativeLr = FloatVector.broadcast(SPECIES, -lr);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector p = load(param, paramOffset, i, m);
      FloatVector g = p.fma(decay, load(grad, gradOffset, i, m));
      FloatVector s = g.fma(g, load(sumSquares, sumSquaresOffset, i, m));
      s.intoMemorySegment(sumSquares, 4 * (sumSquaresOffset + i), ORDER, m);
      g.div(s.sqrt().add(eps)).fma(negativeLr, p).intoMemorySegment(param, 4 * (paramOffset + i), ORDER, m);
    }
  }

  /** RMSProp with the running average of squared gradients. */
  public static void rmsprop(long n, float lr, float alpha, float eps, float weightDecay, MemorySegment param,
      long paramOffset, MemorySegment grad, long gradOffset, MemorySegment squareAverage, long squareAverageOffset) {
    check(n, param, paramOffset, grad, gradOffset, squareAverage, squareAverageOffset, null, 0);
    float rest = 1 - alpha;
    FloatVector decay = FloatVector.broadcast(SPECIES, weightDecay);
    FloatVector negativeLr = FloatVector.broadcast(SPECIES, -lr);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector p = load(param, paramOffset, i, m);
      FloatVector g = p.fma(decay, load(grad, gradOffset, i, m));
      FloatVector a = load(squareAverage, squareAverageOffset, i, m).mul(alpha).add(g.mul(g).mul(rest));
      a.intoMemorySegment(squareAverage, 4 * (squareAverageOffset + i), ORDER, m);
      g.div(a.sqrt().add(eps)).fma(negativeLr, p).intoMemorySegment(param, 4 * (paramOffset + i), ORDER, m);
    }
  }

  /** Adam with L2 weight decay added to the gradient; step is the 1-based step count. */
  public static void adam(long n, float lr, float beta1, float beta2, float eps, float weightDecay, long step,
      MemorySegment param, long paramOffset, MemorySegment grad, long gradOffset, MemorySegment m, long mOffset,
      MemorySegment v, long vOffset) {
    adamStep(n, lr, beta1, beta2, eps, weightDecay, false, 1, step, param, paramOffset, grad, gradOffset, m, mOffset, v,
        vOffset);
  }

  /** AdamW: the weight decay is decoupled, {@code p -= lr wd p} before the Adam step. */
  public static void adamw(long n, float lr, float beta1, float beta2, float eps, float weightDecay, long step,
      MemorySegment param, long paramOffset, MemorySegment grad, long gradOffset, MemorySegment m, long mOffset,
      MemorySegment v, long vOffset) {
    adamStep(n, lr, beta1, beta2, eps, 0, true, 1 - lr * weightDecay, step, param, paramOffset, grad, gradOffset, m,
        mOffset, v, vOffset);
  }

  private static void adamStep(long n, float lr, float beta1, float beta2, float eps, float l2, boolean decoupled,
      float shrink,
      long step, MemorySegment param, long paramOffset, MemorySegment grad, long gradOffset, MemorySegment mSeg,
      long mOffset, MemorySegment vSeg, long vOffset) {
    check(n, param, paramOffset, grad, gradOffset, mSeg, mOffset, vSeg, vOffset);
    Checks.positive(step, "step");
    float stepSize = (float) (lr / (1 - Math.pow(beta1, step)));
    float vScale = (float) (1 / (1 - Math.pow(beta2, step)));
    float rest1 = 1 - beta1;
    float rest2 = 1 - beta2;
    FloatVector decay = FloatVector.broadcast(SPECIES, l2);
    FloatVector negativeStep = FloatVector.broadcast(SPECIES, -stepSize);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> k = SPECIES.indexInRange(i, n);
      FloatVector p = load(param, paramOffset, i, k);
      p = decoupled ? p.mul(shrink) : p;
      FloatVector g = p.fma(decay, load(grad, gradOffset, i, k));
      FloatVector m = load(mSeg, mOffset, i, k).mul(beta1).add(g.mul(rest1));
      FloatVector v = load(vSeg, vOffset, i, k).mul(beta2).add(g.mul(g).mul(rest2));
      m.intoMemorySegment(mSeg, 4 * (mOffset + i), ORDER, k);
      v.intoMemorySegment(vSeg, 4 * (vOffset + i), ORDER, k);
      FloatVector denominator = v.mul(vScale).sqrt().add(eps);
      m.div(denominator).fma(negativeStep, p).intoMemorySegment(param, 4 * (paramOffset + i), ORDER, k);
    }
  }

  /**
   * Scales the gradients so that their global L2 norm is at most maxNorm, and returns the norm
   * before scaling. The sum of squares is blocked within a segment and added in double across
   * blocks and segments.
   */
  public static float clipGlobalNorm(float maxNorm, MemorySegment[] grads, long[] offsets, long[] lengths) {
    Checks.notNull(grads, "grads");
    Checks.notNull(offsets, "offsets");
    Checks.notNull(lengths, "lengths");
    if (offsets.length != grads.length || lengths.length != grads.length) {
      throw new IllegalArgumentException("grads, offsets and lengths must have one entry per segment, got "
          + grads.length + ", " + offsets.length + " and " + lengths.length);
    }
    if (!(maxNorm > 0)) {
      throw new IllegalArgumentException("maxNorm = " + maxNorm + " must be > 0");
    }
    for (int s = 0; s < grads.length; s++) {
      // Names are built only for a bad entry, so a valid call allocates nothing.
      if (lengths[s] < 0 || grads[s] == null || offsets[s] < 0 || offsets[s] > Checks.floats(grads[s]) - lengths[s]
          || grads[s].isReadOnly() || !grads[s].scope().isAlive()) {
        Checks.nonNegative(lengths[s], "lengths[" + s + "]");
        Elementwise.span(lengths[s], grads[s], offsets[s], "grads[" + s + "]", true);
      }
      Checks.accessible(grads[s], "grads", true);
    }
    double squares = 0;
    for (int s = 0; s < grads.length; s++) {
      for (long done = 0; done < lengths[s]; done += Loss.BLOCK) {
        squares += sumOfSquares(Math.min(Loss.BLOCK, lengths[s] - done), grads[s], offsets[s] + done);
      }
    }
    double norm = Math.sqrt(squares);
    double coefficient = maxNorm / (norm + 1e-6);
    if (coefficient < 1) {
      for (int s = 0; s < grads.length; s++) {
        Elementwise.scale(lengths[s], (float) coefficient, grads[s], offsets[s], grads[s], offsets[s]);
      }
    }
    return (float) norm;
  }

  private static float sumOfSquares(long n, MemorySegment s, long offset) {
    FloatVector acc = FloatVector.zero(SPECIES);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector g = load(s, offset, i, m);
      acc = g.fma(g, acc);
    }
    return FloatLanes.sum(acc);
  }

  private static void check(long n, MemorySegment param, long paramOffset, MemorySegment grad, long gradOffset,
      MemorySegment state1, long state1Offset, MemorySegment state2, long state2Offset) {
    Checks.nonNegative(n, "n");
    Elementwise.span(n, param, paramOffset, "param", true);
    Elementwise.span(n, grad, gradOffset, "grad", false);
    if (state1 != null) {
      Elementwise.span(n, state1, state1Offset, "state", true);
    }
    if (state2 != null) {
      Elementwise.span(n, state2, state2Offset, "second state", true);
    }
  }
}
