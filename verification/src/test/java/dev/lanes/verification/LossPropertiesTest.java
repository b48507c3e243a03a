package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Loss;
import dev.lanes.kernels.Softmax;
import dev.lanes.kernels.reference.LossReference;
import dev.lanes.kernels.reference.SoftmaxReference;
import dev.lanes.kernels.reference.SoftmaxReference.LossAndGradient;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * Losses: the fused softmax cross-entropy (labels with ignore-index, and probability targets),
 * binary cross-entropy with logits and mean squared error. The references' gradients against
 * central differences; the kernels against the references within bounds derived below; the fused
 * cross-entropy against the composition of the softmax kernels.
 */
class LossPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final double TINY = Math.scalb(1.0, -126);
  /** Blocked summation: at most BLOCK/4 additions per lane plus 5 levels (see Loss). */
  private static final double SUM = (Loss.BLOCK / 4 + 5) * U;
  private static final double[] SCALES = {0.5, 4, 30, 1e4};

  /** Random rows x cols logits, labels (about one in six ignored, as -100) and soft targets. */
  record Problem(int rows, int cols, float[] logits, int[] labels, float[] targets) {
    static Problem random(long seed, int maxRows, int maxCols) {
      SplittableRandom random = new SplittableRandom(seed);
      int rows = random.nextInt(maxRows + 1);
      int cols = 1 + random.nextInt(maxCols);
      double scale = SCALES[random.nextInt(SCALES.length)];
      float[] logits = new float[rows * cols];
      for (int i = 0; i < logits.length; i++) {
        logits[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
      }
      int[] labels = new int[rows];
      float[] targets = new float[rows * cols];
      double smoothing = random.nextBoolean() ? 0.1 : 0;
      for (int r = 0; r < rows; r++) {
        labels[r] = random.nextInt(6) == 0 ? -100 : random.nextInt(cols);
        // A label-smoothed one-hot, or a random distribution.
        boolean smooth = random.nextBoolean();
        double total = 0;
        for (int i = 0; i < cols; i++) {
          double v = smooth ? smoothing / cols + (i == Math.floorMod(labels[r], cols) ? 1 - smoothing : 0)
              : random.nextDouble();
          targets[r * cols + i] = (float) v;
          total += v;
        }
        for (int i = 0; i < cols; i++) {
          targets[r * cols + i] = (float) (targets[r * cols + i] / total);
        }
      }
      return new Problem(rows, cols, logits, labels, targets);
    }
  }

  // ---- References against central differences ----

  @Test
  void referenceGradientsMatchCentralDifferences() {
    Properties.qt(100).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 3, 6);
      if (p.rows() == 0) {
        return;
      }
      double[] x = Doubles.of(p.logits());
      for (int i = 0; i < x.length; i++) {
        x[i] = x[i] / Math.max(1, Math.abs(x[i])) * 4; // moderate logits: the difference quotient sees curvature
      }
      double[] one = {1};
      boolean anyLabel = false;
      for (int label : p.labels()) {
        anyLabel |= label != -100;
      }
      // The loss is a sum of about cols + 4 double operations per row, of magnitude under |loss| + 10.
      if (anyLabel) {
        LossAndGradient ce = SoftmaxReference.crossEntropy(p.rows(), p.cols(), x, p.labels(), -100);
        NumericalGradient.check("cross-entropy", x, one, ce.gradient(),
            xs -> new double[] {SoftmaxReference.crossEntropy(p.rows(), p.cols(), xs, p.labels(), -100).loss()},
            NumericalGradient.roundoff(x.length * 2, Math.abs(ce.loss()) + 10) + 1e-12, x.length);
      }
      double[] t = Doubles.of(p.targets());
      LossAndGradient soft = SoftmaxReference.crossEntropyProbabilities(p.rows(), p.cols(), x, t);
      NumericalGradient.check("soft cross-entropy", x, one, soft.gradient(),
          xs -> new double[] {SoftmaxReference.crossEntropyProbabilities(p.rows(), p.cols(), xs, t).loss()},
          NumericalGradient.roundoff(x.length * 2, Math.abs(soft.loss()) + 10) + 1e-12, x.length);
      LossAndGradient bce = LossReference.binaryCrossEntropyWithLogits(x, t);
      NumericalGradient.check("bce", x, one, bce.gradient(),
          xs -> new double[] {LossReference.binaryCrossEntropyWithLogits(xs, t).loss()},
          NumericalGradient.roundoff(x.length * 8, Math.abs(bce.loss()) + 10) + 1e-12, x.length);
      LossAndGradient mse = LossReference.meanSquaredError(x, t);
      NumericalGradient.check("mse", x, one, mse.gradient(),
          xs -> new double[] {LossReference.meanSquaredError(xs, t).loss()},
          NumericalGradient.roundoff(x.length * 3, Math.abs(mse.loss()) + 10), x.length);
    });
  }

  // ---- Kernels against the references ----

  @Test
  void crossEntropyWithLabelsMatchesTheReference() {
    Properties.qt(300).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 8, 70);
      float[] d = new float[p.logits().length];
      float loss = Softmax.crossEntropy(p.rows(), p.cols(), p.logits(), 0, p.labels(), 0, -100, d, 0);
      double[] x = Doubles.of(p.logits());
      LossAndGradient ref = SoftmaxReference.crossEntropy(p.rows(), p.cols(), x, p.labels(), -100);
      int count = (int) java.util.Arrays.stream(p.labels()).filter(l -> l != -100).count();
      if (count == 0) {
        assertTrue(Float.isNaN(loss), "every row ignored gives NaN");
        assertArrayEquals(new float[d.length], d, "and a zero gradient");
        return;
      }
      double lossBound = 0;
      for (int r = 0; r < p.rows(); r++) {
        if (p.labels()[r] != -100) {
          lossBound += sumBound(x, r, p.cols());
        }
      }
      lossBound = lossBound / count + U * Math.abs(ref.loss());
      close("loss", seed, loss, ref.loss(), lossBound);
      checkLabelGradient(p, seed, d, ref, count);
      // The loss alone (no gradient buffer), and the gradient written over the logits, are held to
      // the same bounds.
      float alone = Softmax.crossEntropy(p.rows(), p.cols(), p.logits(), 0, p.labels(), 0, -100, null, 0);
      close("loss without a gradient", seed, alone, ref.loss(), lossBound);
      float[] inPlace = p.logits().clone();
      Softmax.crossEntropy(p.rows(), p.cols(), inPlace, 0, p.labels(), 0, -100, inPlace, 0);
      checkLabelGradient(p, seed, inPlace, ref, count);
    });
  }

  private static void checkLabelGradient(Problem p, long seed, float[] d, LossAndGradient ref, int count) {
    double[] x = Doubles.of(p.logits());
    for (int r = 0; r < p.rows(); r++) {
      double m = rowMax(x, r, p.cols());
      for (int i = 0; i < p.cols(); i++) {
        int at = r * p.cols() + i;
        if (p.labels()[r] == -100) {
          close("ignored row gradient", seed, d[at], 0, 0);
          continue;
        }
        double prob = ref.gradient()[at] * count + (i == p.labels()[r] ? 1 : 0);
        // p_i carries u(|x_i - m| + 3) from its exponential, cols u from S, 3u from 1/(S count) and
        // the product; the label's -1/count one rounding; the difference one more.
        double bound = U * (Math.abs(x[at] - m) + p.cols() + 6) * prob / count
            + (i == p.labels()[r] ? U / count : 0) + U * Math.abs(ref.gradient()[at]) + TINY;
        close("dlogits", seed, d[at], ref.gradient()[at], bound);
      }
    }
  }

  /**
   * The error of one row's {@code log S + m - x_label} as the kernel computes it (m - x_label and
   * the log in double): the relative error of S, a sum of cols float exponentials each carrying
   * {@code u(|x_i - m| + 3)}, plus cols u for the float sum.
   */
  private static double sumBound(double[] x, int r, int cols) {
    double m = rowMax(x, r, cols);
    double s = 0;
    double weighted = 0;
    for (int i = 0; i < cols; i++) {
      double e = Math.exp(x[r * cols + i] - m);
      s += e;
      weighted += e * (Math.abs(x[r * cols + i] - m) + 3);
    }
    return U * (weighted / s + cols + 1);
  }

  @Test
  void crossEntropyWithProbabilitiesMatchesTheReference() {
    Properties.qt(300).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 8, 70);
      float[] d = new float[p.logits().length];
      float loss = Softmax.crossEntropyProbabilities(p.rows(), p.cols(), p.logits(), 0, p.targets(), 0, d, 0);
      double[] x = Doubles.of(p.logits());
      double[] t = Doubles.of(p.targets());
      LossAndGradient ref = SoftmaxReference.crossEntropyProbabilities(p.rows(), p.cols(), x, t);
      if (p.rows() == 0) {
        assertTrue(Float.isNaN(loss), "no rows gives NaN");
        return;
      }
      double lossBound = 0;
      for (int r = 0; r < p.rows(); r++) {
        double m = rowMax(x, r, p.cols());
        double gap = 0;
        double mass = 0;
        double s = 0;
        for (int i = 0; i < p.cols(); i++) {
          gap += t[r * p.cols() + i] * (m - x[r * p.cols() + i]);
          mass += t[r * p.cols() + i];
          s += Math.exp(x[r * p.cols() + i] - m);
        }
        // gap: a float dot of cols terms, each with its subtraction; mass: a float sum; mass log S.
        lossBound += (p.cols() + 2) * U * gap + mass * sumBound(x, r, p.cols())
            + Math.abs(Math.log(s)) * p.cols() * U * mass;
      }
      lossBound = lossBound / p.rows() + U * Math.abs(ref.loss());
      close("soft loss", seed, loss, ref.loss(), lossBound);
      for (int r = 0; r < p.rows(); r++) {
        double m = rowMax(x, r, p.cols());
        for (int i = 0; i < p.cols(); i++) {
          int at = r * p.cols() + i;
          double prob = Math.exp(SoftmaxReference.logForward(1, p.cols(),
              java.util.Arrays.copyOfRange(x, r * p.cols(), (r + 1) * p.cols()))[i]);
          // a = mass/(S rows): mass and S each cols u, two roundings; e_i u(|x_i - m| + 3);
          // t_i/rows two roundings; the fused multiply-add one.
          double bound = U * (2 * p.cols() + 5 + Math.abs(x[at] - m)) * prob / p.rows()
              + 2 * U * t[at] / p.rows() + U * Math.abs(ref.gradient()[at]) + TINY;
          close("soft dlogits", seed, d[at], ref.gradient()[at], bound);
        }
      }
    });
  }

  @Test
  void fusedCrossEntropyMatchesSoftmaxThenItsGradient() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 8, 70);
      int count = (int) java.util.Arrays.stream(p.labels()).filter(l -> l != -100).count();
      if (count == 0) {
        return;
      }
      float[] fused = new float[p.logits().length];
      float loss = Softmax.crossEntropy(p.rows(), p.cols(), p.logits(), 0, p.labels(), 0, -100, fused, 0);
      // The unfused composition from the kernels: y = softmax(x), z = log_softmax(x), then
      // dlogits = (y - onehot)/count and loss = -mean z[label], in double from the float y and z.
      float[] y = new float[fused.length];
      float[] z = new float[fused.length];
      Softmax.forward(p.rows(), p.cols(), p.logits(), 0, y, 0);
      Softmax.logForward(p.rows(), p.cols(), p.logits(), 0, z, 0);
      double[] x = Doubles.of(p.logits());
      double composedLoss = 0;
      double lossBound = U * Math.abs(loss);
      for (int r = 0; r < p.rows(); r++) {
        if (p.labels()[r] == -100) {
          continue;
        }
        double m = rowMax(x, r, p.cols());
        int at = r * p.cols() + p.labels()[r];
        composedLoss -= z[at];
        // Both within their bound of the exact value: the fused loss's row bound, and
        // log-softmax's u(|x - m| + 3n + 2|log S| + |z| + 6) (see Softmax).
        double s = 0;
        for (int i = 0; i < p.cols(); i++) {
          s += Math.exp(x[r * p.cols() + i] - m);
        }
        lossBound += (sumBound(x, r, p.cols()) + U * (Math.abs(x[at] - m) + 3 * p.cols()
            + 2 * Math.abs(Math.log(s)) + Math.abs(z[at]) + 6)) / count;
        for (int i = 0; i < p.cols(); i++) {
          int k = r * p.cols() + i;
          double composed = (y[k] - (i == p.labels()[r] ? 1 : 0)) / (double) count;
          // Softmax's bound u(|x - m| + 3n + 6) y, plus the fused bound of the test above.
          double bound = U * (Math.abs(x[k] - m) + 3 * p.cols() + 6) * y[k] / count
              + U * (Math.abs(x[k] - m) + p.cols() + 6) * y[k] / count
              + (i == p.labels()[r] ? U / count : 0) + U * Math.abs(composed) + 2 * TINY;
          close("fused vs composed dlogits", seed, fused[k], composed, bound);
        }
      }
      close("fused vs composed loss", seed, loss, composedLoss / count, lossBound);
    });
  }

  @Test
  void binaryCrossEntropyAndMseMatchTheReference() {
    Properties.qt(300).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int n = random.nextInt(3) == 0 ? random.nextInt(3) : random.nextInt(5000);
      double scale = SCALES[random.nextInt(SCALES.length)];
      float[] x = new float[n];
      float[] t = new float[n];
      for (int i = 0; i < n; i++) {
        x[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
        t[i] = random.nextBoolean() ? random.nextInt(2) : (float) random.nextDouble();
      }
      float[] dx = new float[n];
      float bce = Loss.binaryCrossEntropyWithLogits(n, x, 0, t, 0, dx, 0);
      float[] dp = new float[n];
      float mse = Loss.meanSquaredError(n, x, 0, t, 0, dp, 0);
      if (n == 0) {
        assertTrue(Float.isNaN(bce) && Float.isNaN(mse), "mean of nothing is NaN");
        return;
      }
      LossAndGradient refBce = LossReference.binaryCrossEntropyWithLogits(Doubles.of(x), Doubles.of(t));
      LossAndGradient refMse = LossReference.meanSquaredError(Doubles.of(x), Doubles.of(t));
      double bceTerms = 0;
      double bceBound = 0;
      double mseTerms = 0;
      for (int i = 0; i < n; i++) {
        double xi = x[i];
        double ti = t[i];
        double l = Math.log1p(Math.exp(-Math.abs(xi)));
        double term = Math.max(xi, 0) - xi * ti + l;
        bceTerms += Math.abs(term);
        // x t, the subtraction, log1pUnit (5u) of an exponential (3u carried through), the add
        bceBound += U * (Math.abs(xi * ti) + Math.abs(Math.max(xi, 0) - xi * ti)) + 8 * U * l + U * Math.abs(term)
            + TINY;
        mseTerms += (xi - ti) * (xi - ti);
        double sigmoid = xi >= 0 ? 1 / (1 + Math.exp(-xi)) : Math.exp(xi) / (1 + Math.exp(xi));
        // sigmoid from e^-|x|: 6u, the subtraction, then 1/n and the product
        double gBound = (6 * U * sigmoid + TINY + U * Math.abs(sigmoid - ti)) / n
            + 2 * U * Math.abs(refBce.gradient()[i]);
        close("bce dx", seed, dx[i], refBce.gradient()[i], gBound);
        close("mse dp", seed, dp[i], refMse.gradient()[i], 3 * U * Math.abs(refMse.gradient()[i]));
      }
      close("bce", seed, bce, refBce.loss(), (bceBound + SUM * bceTerms) / n + U * Math.abs(refBce.loss()));
      close("mse", seed, mse, refMse.loss(), (3 * U * mseTerms + SUM * mseTerms) / n + U * Math.abs(refMse.loss()));
    });
  }

  @Test
  void badLabelsThrowBeforeAnythingIsWritten() {
    float[] logits = {1, 2, 3, 4, 5, 6};
    float[] d = {7, 7, 7, 7, 7, 7};
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Softmax.crossEntropy(2, 3, logits, 0, new int[] {1, 3}, 0, -100, d, 0));
    assertTrue(e.getMessage().contains("labels[1] = 3") && e.getMessage().contains("[0, 3)"), e.getMessage());
    assertArrayEquals(new float[] {7, 7, 7, 7, 7, 7}, d, "nothing written");
    assertThrows(IndexOutOfBoundsException.class,
        () -> Softmax.crossEntropy(2, 3, logits, 0, new int[] {1}, 0, -100, d, 0));
    assertThrows(IndexOutOfBoundsException.class,
        () -> Loss.meanSquaredError(7, logits, 0, logits, 0, d, 0));
    assertArrayEquals(new float[] {7, 7, 7, 7, 7, 7}, d, "nothing written");
  }

  private static double rowMax(double[] x, int r, int cols) {
    double m = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < cols; i++) {
      m = Math.max(m, x[r * cols + i]);
    }
    return m;
  }

  private static void close(String what, long seed, double got, double want, double bound) {
    if (!(Math.abs(got - want) <= bound)) {
      throw new AssertionError(what + " = " + got + " but reference " + want + ": error " + Math.abs(got - want)
          + " > bound " + bound + " (case seed " + seed + ")");
    }
  }
}
