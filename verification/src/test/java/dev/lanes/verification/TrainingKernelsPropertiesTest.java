package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Dropout;
import dev.lanes.kernels.Elementwise;
import dev.lanes.kernels.Embedding;
import dev.lanes.kernels.Loss;
import dev.lanes.kernels.Optimizer;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.OptimizerReference;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * Dropout, embedding, the elementwise basics and the optimizer steps against double references,
 * with first-order error bounds derived per kernel in the comments ({@code u = 2^-24}).
 */
class TrainingKernelsPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final double SUM = (Loss.BLOCK / 4 + 5) * U;

  private static float[] values(SplittableRandom random, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
    }
    return v;
  }

  private static MemorySegment seg(float[] v) {
    return MemorySegment.ofArray(v);
  }

  private static void close(String what, long seed, int i, double got, double want, double bound) {
    if (!(Math.abs(got - want) <= bound)) {
      throw new AssertionError(what + "[" + i + "] = " + got + " but reference " + want + ": error "
          + Math.abs(got - want) + " > bound " + bound + " (case seed " + seed + ")");
    }
  }

  // ---- Dropout ----

  @Test
  void dropoutKeepsExactlyTheHashedElementsScaledAndBackwardUsesTheSameMask() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int n = random.nextInt(3) == 0 ? random.nextInt(3) : random.nextInt(3000);
      float p = new float[] {0f, 0.1f, 0.5f, 0.9f, 1f, (float) random.nextDouble()}[random.nextInt(6)];
      long maskSeed = random.nextLong();
      int offset = random.nextInt(5);
      float[] x = values(random, n + offset, 4);
      float[] y = new float[n + offset];
      Dropout.forward(n, p, maskSeed, seg(x), offset, seg(y), offset, Parallelism.sequential());
      float[] dy = values(random, n + offset, 1);
      float[] dx = new float[n + offset];
      Dropout.backward(n, p, maskSeed, seg(dy), offset, seg(dx), offset, Parallelism.sequential());
      for (int i = 0; i < n; i++) {
        boolean keep = p < 1 && Dropout.keeps(maskSeed, i, p);
        // Kept: x * fl(1 / fl(1 - p)): three roundings from x/(1-p).
        double want = keep ? x[offset + i] / (1.0 - p) : 0;
        close("dropout y", seed, i, y[offset + i], want, 3 * U * Math.abs(want));
        double wantDx = keep ? dy[offset + i] / (1.0 - p) : 0;
        close("dropout dx", seed, i, dx[offset + i], wantDx, 3 * U * Math.abs(wantDx));
      }
    });
  }

  @Test
  void dropoutMaskIsTheSameForAnyThreadCountAndKeepsAboutOneMinusP() {
    int n = (1 << 18) + 5;
    SplittableRandom random = new SplittableRandom(Properties.seed());
    float[] x = values(random, n, 1);
    for (int i = 0; i < n; i++) {
      x[i] = x[i] == 0 ? 1 : x[i];
    }
    float p = 0.3f;
    long maskSeed = random.nextLong();
    float[] one = new float[n];
    Dropout.forward(n, p, maskSeed, seg(x), 0, seg(one), 0, Parallelism.sequential());
    for (int threads = 2; threads <= 3; threads++) {
      float[] many = new float[n];
      MemorySegment shared = java.lang.foreign.Arena.ofAuto().allocate(4L * n);
      MemorySegment.copy(seg(x), 0, shared, 0, 4L * n);
      MemorySegment out = java.lang.foreign.Arena.ofAuto().allocate(4L * n);
      Dropout.forward(n, p, maskSeed, shared, 0, out, 0, Parallelism.threads(threads));
      MemorySegment.copy(out, 0, seg(many), 0, 4L * n);
      assertArrayEquals(one, many, threads + " threads give another mask");
    }
    int kept = 0;
    for (float v : one) {
      kept += v != 0 ? 1 : 0;
    }
    // Binomial(n, 0.7): standard deviation sqrt(n p (1-p)); six of them is a one-in-10^9 miss
    // for a fair hash.
    double sigma = Math.sqrt(n * p * (1.0 - p));
    assertTrue(Math.abs(kept - n * (1.0 - p)) <= 6 * sigma, "kept " + kept + " of " + n);
    assertThrows(IllegalArgumentException.class,
        () -> Dropout.forward(4, 1.5f, 1, seg(x), 0, seg(one), 0, Parallelism.sequential()));
  }

  // ---- Embedding ----

  @Test
  void embeddingGathersRowsAndScatterAddsGradients() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int vocab = 1 + random.nextInt(20);
      int dim = 1 + random.nextInt(40);
      int count = random.nextInt(30);
      int[] ids = new int[count];
      for (int r = 0; r < count; r++) {
        ids[r] = random.nextInt(vocab);
      }
      float[] table = values(random, vocab * dim, 1);
      float[] y = new float[count * dim];
      Embedding.forward(count, vocab, dim, MemorySegment.ofArray(ids), 0, seg(table), 0, seg(y), 0);
      for (int r = 0; r < count; r++) {
        for (int j = 0; j < dim; j++) {
          assertEquals(table[ids[r] * dim + j], y[r * dim + j], "gathered row " + r);
        }
      }
      float[] dy = values(random, count * dim, 1);
      float[] dtable = values(random, vocab * dim, 9); // overwritten
      Embedding.backward(count, vocab, dim, MemorySegment.ofArray(ids), 0, seg(dy), 0, seg(dtable), 0);
      for (int v = 0; v < vocab; v++) {
        for (int j = 0; j < dim; j++) {
          double want = 0;
          double magnitude = 0;
          int terms = 0;
          for (int r = 0; r < count; r++) {
            if (ids[r] == v) {
              want += dy[r * dim + j];
              magnitude += Math.abs(dy[r * dim + j]);
              terms++;
            }
          }
          // A float sum of the repeated rows in order: (terms - 1) u of their magnitudes.
          close("dtable", seed, v * dim + j, dtable[v * dim + j], want, Math.max(0, terms - 1) * U * magnitude);
        }
      }
    });
    float[] y = {5, 5};
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> Embedding.forward(2, 3, 1,
        MemorySegment.ofArray(new int[] {0, 3}), 0, seg(new float[3]), 0, seg(y), 0));
    assertTrue(e.getMessage().contains("ids[1] = 3"), e.getMessage());
    assertArrayEquals(new float[] {5, 5}, y, "nothing written");
  }

  // ---- Elementwise ----

  @Test
  void elementwiseBasicsMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int n = random.nextInt(3) == 0 ? random.nextInt(3) : random.nextInt(6000);
      double scale = new double[] {1, 1e4, 1e-3}[random.nextInt(3)];
      float[] a = values(random, n, scale);
      float[] b = values(random, n, scale);
      float alpha = (float) (random.nextDouble() * 4 - 2);
      float[] sum = new float[n];
      float[] product = new float[n];
      float[] axpy = b.clone();
      float[] scaled = new float[n];
      Elementwise.add(n, seg(a), 0, seg(b), 0, seg(sum), 0);
      Elementwise.multiply(n, seg(a), 0, seg(b), 0, seg(product), 0);
      Elementwise.axpy(n, alpha, seg(a), 0, seg(axpy), 0);
      Elementwise.scale(n, alpha, seg(a), 0, seg(scaled), 0);
      double total = 0;
      double magnitude = 0;
      for (int i = 0; i < n; i++) {
        // One rounding each (axpy is one fused multiply-add).
        close("add", seed, i, sum[i], (double) a[i] + b[i], U * Math.abs((double) a[i] + b[i]));
        close("multiply", seed, i, product[i], (double) a[i] * b[i], U * Math.abs((double) a[i] * b[i]));
        double fma = (double) alpha * a[i] + b[i];
        close("axpy", seed, i, axpy[i], fma, U * Math.abs(fma));
        close("scale", seed, i, scaled[i], (double) alpha * a[i], U * Math.abs((double) alpha * a[i]));
        total += a[i];
        magnitude += Math.abs(a[i]);
      }
      float s = Elementwise.sum(n, seg(a), 0);
      close("sum", seed, 0, s, total, SUM * magnitude + U * Math.abs(total));
      float mean = Elementwise.mean(n, seg(a), 0);
      if (n == 0) {
        assertTrue(Float.isNaN(mean), "mean of nothing is NaN");
      } else {
        close("mean", seed, 0, mean, total / n, (SUM * magnitude) / n + U * Math.abs(total / n));
      }
    });
  }

  @Test
  void biasAddAndItsBackwardMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int batch = random.nextInt(4);
      int channels = 1 + random.nextInt(40);
      int spatial = random.nextBoolean() ? 1 : 1 + random.nextInt(50);
      int count = batch * channels * spatial;
      float[] x = values(random, count, 2);
      float[] bias = values(random, channels, 2);
      float[] y = new float[count];
      Elementwise.biasAdd(batch, channels, spatial, seg(x), 0, seg(bias), 0, seg(y), 0);
      float[] dy = values(random, count, 1);
      float[] db = values(random, channels, 5);
      Elementwise.biasBackward(batch, channels, spatial, seg(dy), 0, seg(db), 0, Parallelism.sequential());
      double[] want = new double[channels];
      double[] magnitude = new double[channels];
      for (int i = 0; i < count; i++) {
        int c = i / spatial % channels;
        double sum = (double) x[i] + bias[c];
        close("bias add", seed, i, y[i], sum, U * Math.abs(sum));
        want[c] += dy[i];
        magnitude[c] += Math.abs(dy[i]);
      }
      for (int c = 0; c < channels; c++) {
        // A float sum of N*S terms: (N S + 1) u of their magnitudes.
        close("bias grad", seed, c, db[c], want[c], (batch * spatial + 1) * U * magnitude[c]);
      }
    });
  }

  // ---- Optimizers: one step from the same float state, against the double reference ----

  /** One random optimizer state: parameters, gradient, two state vectors and hyperparameters. */
  record Step(long seed, int n, float[] p, float[] g, float[] s1, float[] s2, float lr, float wd, long t) {
    static Step draw(long seed) {
      SplittableRandom random = new SplittableRandom(seed);
      int n = random.nextInt(3) == 0 ? random.nextInt(3) : random.nextInt(400);
      float[] s2 = values(random, n, 1);
      for (int i = 0; i < n; i++) {
        s2[i] = Math.abs(s2[i]) * (float) Math.pow(10, -random.nextInt(6)); // second moments, > 0
      }
      return new Step(seed, n, values(random, n, 2), values(random, n, 1), values(random, n, 0.5f), s2,
          new float[] {1e-3f, 0.1f}[random.nextInt(2)], new float[] {0f, 0.01f}[random.nextInt(2)],
          new long[] {1, 2, 10, 1000}[random.nextInt(4)]);
    }
  }

  @Test
  void sgdAndMomentumMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Step s = Step.draw(seed);
      float[] p = s.p().clone();
      Optimizer.sgd(s.n(), s.lr(), s.wd(), seg(p), 0, seg(s.g()), 0);
      double[] rp = Doubles.of(s.p());
      OptimizerReference.sgd(s.lr(), s.wd(), rp, Doubles.of(s.g()));
      for (int i = 0; i < s.n(); i++) {
        double grad = s.g()[i] + (double) s.wd() * s.p()[i];
        // g' one rounding (fma), p' one more, the first scaled by lr.
        close("sgd p", seed, i, p[i], rp[i], U * (Math.abs(rp[i]) + s.lr() * Math.abs(grad)));
      }
      for (boolean nesterov : new boolean[] {false, true}) {
        float mu = 0.9f;
        float[] mp = s.p().clone();
        float[] v = s.s1().clone();
        Optimizer.momentum(s.n(), s.lr(), mu, s.wd(), nesterov, seg(mp), 0, seg(s.g()), 0, seg(v), 0);
        double[] rmp = Doubles.of(s.p());
        double[] rv = Doubles.of(s.s1());
        OptimizerReference.momentum(s.lr(), mu, s.wd(), nesterov, rmp, Doubles.of(s.g()), rv);
        for (int i = 0; i < s.n(); i++) {
          double grad = s.g()[i] + (double) s.wd() * s.p()[i];
          double eg = U * Math.abs(grad);
          double ev = U * Math.abs(rv[i]) + eg;
          double step = nesterov ? grad + mu * rv[i] : rv[i];
          double es = nesterov ? U * Math.abs(step) + mu * ev + eg : ev;
          close("momentum v", seed, i, v[i], rv[i], ev);
          close("momentum p", seed, i, mp[i], rmp[i], U * Math.abs(rmp[i]) + s.lr() * es);
        }
      }
    });
  }

  @Test
  void adagradAndRmspropMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Step s = Step.draw(seed);
      float eps = 1e-10f;
      float[] p = s.p().clone();
      float[] acc = s.s2().clone();
      Optimizer.adagrad(s.n(), s.lr(), eps, s.wd(), seg(p), 0, seg(s.g()), 0, seg(acc), 0);
      double[] rp = Doubles.of(s.p());
      double[] racc = Doubles.of(s.s2());
      OptimizerReference.adagrad(s.lr(), eps, s.wd(), rp, Doubles.of(s.g()), racc);
      float alpha = 0.99f;
      float[] q = s.p().clone();
      float[] avg = s.s2().clone();
      Optimizer.rmsprop(s.n(), s.lr(), alpha, eps, s.wd(), seg(q), 0, seg(s.g()), 0, seg(avg), 0);
      double[] rq = Doubles.of(s.p());
      double[] ravg = Doubles.of(s.s2());
      OptimizerReference.rmsprop(s.lr(), alpha, eps, s.wd(), rq, Doubles.of(s.g()), ravg);
      for (int i = 0; i < s.n(); i++) {
        double grad = s.g()[i] + (double) s.wd() * s.p()[i];
        double eg = U * Math.abs(grad);
        // s' = g g + s (one fma) plus g's error twice; then g / (sqrt(s') + eps): the square root
        // halves s' error and adds u, the add and the division a u each.
        double es = U * racc[i] + 2 * Math.abs(grad) * eg;
        close("adagrad state", seed, i, acc[i], racc[i], es);
        close("adagrad p", seed, i, p[i], rp[i], U * Math.abs(rp[i])
            + s.lr() * updateError(grad, eg, racc[i], es, eps));
        // a' = a alpha + (g g)(1 - alpha): fl(1 - alpha) u, two products and the add.
        double rest = 1 - (double) alpha;
        double ea = U * (alpha * (double) s.s2()[i] + 3 * rest * grad * grad + ravg[i]) + rest * 2 * Math.abs(grad) * eg;
        close("rmsprop state", seed, i, avg[i], ravg[i], ea);
        close("rmsprop p", seed, i, q[i], rq[i], U * Math.abs(rq[i])
            + s.lr() * updateError(grad, eg, ravg[i], ea, eps));
      }
    });
  }

  /** The error of {@code g / (sqrt(s) + eps)} given the errors of g and s (see the callers). */
  private static double updateError(double g, double eg, double s, double es, double eps) {
    double root = Math.sqrt(s);
    double relative = (0.5 * es / s + U) * root / (root + eps) + 2 * U;
    return (eg + Math.abs(g) * relative) / (root + eps);
  }

  @Test
  void adamAndAdamwMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Step s = Step.draw(seed);
      float beta1 = 0.9f;
      float beta2 = 0.999f;
      float eps = 1e-8f;
      for (boolean decoupled : new boolean[] {false, true}) {
        float[] p = s.p().clone();
        float[] m = s.s1().clone();
        float[] v = s.s2().clone();
        if (decoupled) {
          Optimizer.adamw(s.n(), s.lr(), beta1, beta2, eps, s.wd(), s.t(), seg(p), 0, seg(s.g()), 0, seg(m), 0,
              seg(v), 0);
        } else {
          Optimizer.adam(s.n(), s.lr(), beta1, beta2, eps, s.wd(), s.t(), seg(p), 0, seg(s.g()), 0, seg(m), 0,
              seg(v), 0);
        }
        double[] rp = Doubles.of(s.p());
        double[] rm = Doubles.of(s.s1());
        double[] rv = Doubles.of(s.s2());
        OptimizerReference.adam(s.lr(), beta1, beta2, eps, s.wd(), decoupled, s.t(), rp, Doubles.of(s.g()), rm, rv);
        double c1 = 1 - Math.pow(beta1, s.t());
        double c2 = 1 - Math.pow(beta2, s.t());
        for (int i = 0; i < s.n(); i++) {
          double p0 = s.p()[i];
          // AdamW shrinks p by fl(1 - fl(lr wd)) first: 2u of |p|, and the product u.
          double ep = decoupled ? 3 * U * Math.abs(p0) : 0;
          double grad = decoupled ? s.g()[i] : s.g()[i] + (double) s.wd() * p0;
          double eg = decoupled ? 0 : U * Math.abs(grad);
          double r1 = 1 - (double) beta1;
          double r2 = 1 - (double) beta2;
          // m' = m b1 + g (1 - b1): fl(1 - b1), two products, the add; v' likewise with g g.
          double em = U * (beta1 * Math.abs(s.s1()[i]) + 2 * r1 * Math.abs(grad) + Math.abs(rm[i])) + r1 * eg;
          double ev = U * (beta2 * s.s2()[i] + 3 * r2 * grad * grad + rv[i]) + r2 * 2 * Math.abs(grad) * eg;
          close("adam m", seed, i, m[i], rm[i], em);
          close("adam v", seed, i, v[i], rv[i], ev);
          // p' = p - fl(lr/c1) m' / (sqrt(fl(1/c2) v') + eps): the scale factors a u each, the
          // product, square root, add and division, and m' and v' errors.
          double vHat = rv[i] / c2;
          double root = Math.sqrt(vHat);
          double ed = (0.5 * (ev / rv[i] + 2 * U) + U) * root / (root + eps) + U;
          double stepSize = s.lr() / c1;
          double eq = stepSize * (em + Math.abs(rm[i]) * (ed + 2 * U)) / (root + eps);
          close(decoupled ? "adamw p" : "adam p", seed, i, p[i], rp[i], U * Math.abs(rp[i]) + eq + ep);
        }
      }
    });
  }

  @Test
  void clippingByTheGlobalNormScalesEverySegmentOnce() {
    Properties.qt(100).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int segments = 1 + random.nextInt(4);
      float[][] grads = new float[segments][];
      MemorySegment[] segs = new MemorySegment[segments];
      long[] offsets = new long[segments];
      long[] lengths = new long[segments];
      double squares = 0;
      for (int k = 0; k < segments; k++) {
        grads[k] = values(random, random.nextInt(3000), random.nextBoolean() ? 1 : 1e-3);
        segs[k] = seg(grads[k].clone());
        lengths[k] = grads[k].length;
        for (float g : grads[k]) {
          squares += (double) g * g;
        }
      }
      double norm = Math.sqrt(squares);
      float maxNorm = (float) (norm * new double[] {0.5, 2}[random.nextInt(2)] + 1e-3);
      float got = Optimizer.clipGlobalNorm(maxNorm, segs, offsets, lengths);
      // Squares: one rounding each plus the blocked sum; the square root halves that.
      double normError = 0.5 * (SUM + U) * norm + U * norm;
      close("global norm", seed, 0, got, norm, normError);
      double coefficient = Math.min(1, maxNorm / (norm + 1e-6));
      for (int k = 0; k < segments; k++) {
        float[] out = segs[k].toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        for (int i = 0; i < out.length; i++) {
          double want = grads[k][i] * coefficient;
          // The coefficient carries the norm's relative error and one rounding; the product one.
          double bound = coefficient < 1 ? Math.abs(want) * (normError / norm + 2 * U) : 0;
          close("clipped", seed, i, out[i], want, bound);
        }
      }
    });
  }
}
