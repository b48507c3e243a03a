package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.lanes.kernels.BatchNorm;
import dev.lanes.kernels.LayerNorm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.NormReference;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * Layer and batch normalization: the references' backward against central differences, and the
 * kernels against the references within first-order bounds derived here, for groups of M values
 * (a row of cols, or a channel's N*S values), {@code u = 2^-24}:
 * <ul>
 *   <li>mean: a float sum and a division, {@code dmu <= (M + 1) u mean|x|};
 *   <li>rstd: the variance is the float sum of squared deviations from the computed mean, which
 *       is {@code var (1 + (M + 3) u) + dmu^2} (the deviations from the exact mean sum to zero),
 *       so {@code rho = ((M + 3) u var + dmu^2) / (2 (var + eps)) + u} bounds rstd's relative error;
 *   <li>xhat: {@code eps_i = s (|x_i - mu| (rho + 2u) + dmu)} with s the exact rstd;
 *   <li>y: {@code |gamma| eps_i + u (|x_i - mu| s |gamma| + |y_i|)} for the fused multiply-add;
 *   <li>backward: each mean of the gradient formula carries its float sum ((M + 2) u of its
 *       magnitude) and the xhat errors, and the three-term combination three roundings; see
 *       {@link #dxBound}.
 * </ul>
 * Inputs are an offset plus a spread, with offsets up to 30 spreads, so that the mean's rounding
 * matters.
 */
class NormPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final float EPS = 1e-5f;

  /** A random problem: shape, data with an offset, affine parameters and upstream gradient. */
  record Problem(int batch, int channels, int spatial, float[] x, float[] gamma, float[] beta, float[] dy) {
    static Problem random(long seed, int maxBatch, int maxChannels, int maxSpatial) {
      SplittableRandom random = new SplittableRandom(seed);
      int batch = 1 + random.nextInt(maxBatch);
      int channels = 1 + random.nextInt(maxChannels);
      int spatial = 1 + random.nextInt(maxSpatial);
      float[] x = new float[batch * channels * spatial];
      float[] dy = new float[x.length];
      double spread = new double[] {0.01, 1, 100}[random.nextInt(3)];
      double offset = spread * new double[] {0, 3, 30}[random.nextInt(3)];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) (offset + spread * (random.nextDouble() * 2 - 1));
        dy[i] = (float) (random.nextDouble() * 2 - 1);
      }
      int parameters = Math.max(channels, spatial);
      float[] gamma = new float[parameters];
      float[] beta = new float[parameters];
      for (int i = 0; i < parameters; i++) {
        gamma[i] = (float) ((0.5 + random.nextDouble()) * (random.nextBoolean() ? 1 : -1));
        beta[i] = (float) (random.nextDouble() * 2 - 1);
      }
      return new Problem(batch, channels, spatial, x, gamma, beta, dy);
    }
  }

  // ---- References against central differences ----

  @Test
  void referenceBackwardsMatchCentralDifferences() {
    Properties.qt(60).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 3, 3, 4);
      double[] x = Doubles.of(p.x());
      double[] w = Doubles.of(p.dy());
      double[] gamma = Doubles.of(p.gamma());
      double[] beta = Doubles.of(p.beta());
      int rows = p.batch() * p.channels();
      int cols = p.spatial();
      double[] g = Arrays.copyOf(gamma, cols);
      double[] b = Arrays.copyOf(beta, cols);
      // Each y is O(M) double operations from values of size |gamma| |xhat| + |beta| < 2 sqrt(M) + 1;
      // the central difference's truncation is eps^2 |y'''| / 6, and y''' grows as rstd^3 (1e6 at
      // the 0.01 spread), so the spread is raised to at least 1 here.
      for (int i = 0; i < x.length; i++) {
        x[i] = x[i] / Math.max(1e-9, Math.abs(x[i])) * Math.max(1, Math.abs(x[i])) + i % 7 * 0.3;
      }
      NormReference.Backward ln = NormReference.layerNormBackward(rows, cols, EPS, x, g, w);
      // Roundoff: y = (x - mu) rstd gamma + beta is computed from x of size up to max|x|, so each y
      // carries about (2M + 8) u_d (2 max|x| rstd |gamma| + |beta|) (the subtraction cancels).
      double maxX = 0;
      for (double v : x) {
        maxX = Math.max(maxX, Math.abs(v));
      }
      double maxR = 0;
      for (double r : NormReference.layerNorm(rows, cols, EPS, x, g, b).rstd()) {
        maxR = Math.max(maxR, r);
      }
      for (double r : NormReference.batchNorm(p.batch(), p.channels(), p.spatial(), EPS, x,
          Arrays.copyOf(gamma, p.channels()), Arrays.copyOf(beta, p.channels())).rstd()) {
        maxR = Math.max(maxR, r);
      }
      double ynorm = Doubles.absDot(w, ones(w.length)) * (2 * maxX * maxR * 1.5 + 1);
      int terms = 2 * Math.max(cols, p.batch() * p.spatial()) + 8;
      double quotient = NumericalGradient.roundoff(terms, ynorm) + 1e-12 * 1e3 * x.length;
      NumericalGradient.check("layer norm dx", x, w, ln.dx(), xs -> NormReference.layerNorm(rows, cols, EPS, xs, g, b).y(),
          quotient, 40);
      NumericalGradient.check("layer norm dgamma", g, w, ln.dgamma(),
          gs -> NormReference.layerNorm(rows, cols, EPS, x, gs, b).y(), quotient, 40);
      NumericalGradient.check("layer norm dbeta", b, w, ln.dbeta(),
          bs -> NormReference.layerNorm(rows, cols, EPS, x, g, bs).y(), quotient, 40);
      double[] gc = Arrays.copyOf(gamma, p.channels());
      double[] bc = Arrays.copyOf(beta, p.channels());
      if (p.batch() * p.spatial() > 1) {
        NormReference.Backward bn = NormReference.batchNormBackward(p.batch(), p.channels(), p.spatial(), EPS, x, gc, w);
        NumericalGradient.check("batch norm dx", x, w, bn.dx(),
            xs -> NormReference.batchNorm(p.batch(), p.channels(), p.spatial(), EPS, xs, gc, bc).y(), quotient, 40);
        NumericalGradient.check("batch norm dgamma", gc, w, bn.dgamma(),
            gs -> NormReference.batchNorm(p.batch(), p.channels(), p.spatial(), EPS, x, gs, bc).y(), quotient, 40);
        NumericalGradient.check("batch norm dbeta", bc, w, bn.dbeta(),
            bs -> NormReference.batchNorm(p.batch(), p.channels(), p.spatial(), EPS, x, gc, bs).y(), quotient, 40);
      }
    });
  }

  // ---- Kernels against the references ----

  /** What the bounds need to know about one group (exact values, from the double reference). */
  record Group(int size, double mu, double s, double var, double dmu, double rho) {
    static Group of(double[] x, int[] members) {
      int m = members.length;
      double sum = 0;
      double abs = 0;
      for (int i : members) {
        sum += x[i];
        abs += Math.abs(x[i]);
      }
      double mu = sum / m;
      double squares = 0;
      for (int i : members) {
        squares += (x[i] - mu) * (x[i] - mu);
      }
      double var = squares / m;
      double s = 1 / Math.sqrt(var + EPS);
      double dmu = (m + 1) * U * abs / m;
      double rho = ((m + 3) * U * var + dmu * dmu) / (2 * (var + EPS)) + U;
      return new Group(m, mu, s, var, dmu, rho);
    }

    double xhatError(double xi) {
      return s * (Math.abs(xi - mu) * (rho + 2 * U) + dmu);
    }
  }

  /**
   * dx = scale (g - mean(g) - xhat mean(g xhat)), scale = s (layer norm, g = dy gamma) or
   * gamma s (batch norm, g = dy). Errors: g's rounding (layer norm), the two float means
   * ((M + 2) u of their magnitudes, plus the xhat errors inside the second), xhat's own error times
   * mean(g xhat), three roundings in the combination, and scale's relative error rho + 2u.
   */
  private static double dxBound(Group grp, double scale, double gi, double xhat, double meanG, double meanGX,
      double meanAbsG, double meanAbsGX, double meanGErr, double dx, boolean gRounded) {
    double inner = (gRounded ? U * Math.abs(gi) : 0) + (grp.size() + 2) * U * meanAbsG
        + Math.abs(xhat) * ((grp.size() + 2) * U * meanAbsGX + meanGErr)
        + grp.xhatError(grp.mu() + xhat / grp.s()) * Math.abs(meanGX)
        + 3 * U * (Math.abs(gi) + Math.abs(meanG) + Math.abs(xhat * meanGX));
    return Math.abs(scale) * inner + (grp.rho() + 2 * U) * Math.abs(dx);
  }

  /**
   * Threads take whole rows (layer norm forward), fixed 32-row blocks whose dgamma and dbeta
   * partial sums the caller adds in block order (layer norm backward), or whole channels (batch
   * norm): 1, 2 and 3 threads give the same bits. Shapes reach past the 2^15 floats per thread
   * below which a call stays on one thread.
   */
  @Test
  void threadCountDoesNotChangeTheBits() {
    Properties.qt(12).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 6, 70, 900);
      float[][] one = allOutputs(p, 1);
      for (int threads = 2; threads <= 3; threads++) {
        float[][] many = allOutputs(p, threads);
        for (int k = 0; k < one.length; k++) {
          assertArrayEquals(one[k], many[k], "output " + k + " of "
              + p.batch() + "x" + p.channels() + "x" + p.spatial() + " on " + threads + " threads, seed " + seed);
        }
      }
    });
  }

  /** Every output of both norms, forward and backward, on a given number of threads. */
  private static float[][] allOutputs(Problem p, int threads) {
    Parallelism par = Parallelism.threads(threads);
    int n = p.x().length;
    int rows = p.batch() * p.channels();
    int cols = p.spatial();
    float[] gamma = Arrays.copyOf(p.gamma(), Math.max(cols, p.channels()));
    float[] beta = Arrays.copyOf(p.beta(), gamma.length);
    float[] lnY = new float[n];
    float[] lnMean = new float[rows];
    float[] lnRstd = new float[rows];
    float[] lnDx = new float[n];
    float[] lnDgamma = new float[cols];
    float[] lnDbeta = new float[cols];
    LayerNorm.forward(rows, cols, EPS, seg(p.x()), 0, seg(gamma), 0, seg(beta), 0, seg(lnY), 0, seg(lnMean), 0,
        seg(lnRstd), 0, par);
    LayerNorm.backward(rows, cols, seg(p.x()), 0, seg(gamma), 0, seg(lnMean), 0, seg(lnRstd), 0, seg(p.dy()), 0,
        seg(lnDx), 0, seg(lnDgamma), 0, seg(lnDbeta), 0, par);
    int c = p.channels();
    float[] bnY = new float[n];
    float[] bnMean = new float[c];
    float[] bnRstd = new float[c];
    float[] runningMean = new float[c];
    float[] runningVar = new float[c];
    Arrays.fill(runningVar, 1f);
    float[] bnInference = new float[n];
    float[] bnDx = new float[n];
    float[] bnDgamma = new float[c];
    float[] bnDbeta = new float[c];
    if ((long) p.batch() * p.spatial() >= 2) {
      BatchNorm.forwardTraining(p.batch(), c, p.spatial(), EPS, 0.1f, seg(p.x()), 0, seg(gamma), 0, seg(beta), 0,
          seg(bnY), 0, seg(bnMean), 0, seg(bnRstd), 0, seg(runningMean), 0, seg(runningVar), 0, par);
      BatchNorm.backward(p.batch(), c, p.spatial(), seg(p.x()), 0, seg(gamma), 0, seg(bnMean), 0, seg(bnRstd), 0,
          seg(p.dy()), 0, seg(bnDx), 0, seg(bnDgamma), 0, seg(bnDbeta), 0, par);
    }
    BatchNorm.forwardInference(p.batch(), c, p.spatial(), EPS, seg(p.x()), 0, seg(gamma), 0, seg(beta), 0,
        seg(runningMean), 0, seg(runningVar), 0, seg(bnInference), 0, par);
    return new float[][] {lnY, lnMean, lnRstd, lnDx, lnDgamma, lnDbeta, bnY, bnMean, bnRstd, runningMean,
        runningVar, bnInference, bnDx, bnDgamma, bnDbeta};
  }

  @Test
  void layerNormMatchesTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 4, 6, 90);
      int rows = p.batch() * p.channels();
      int cols = p.spatial();
      float[] gamma = Arrays.copyOf(p.gamma(), cols);
      float[] beta = Arrays.copyOf(p.beta(), cols);
      float[] y = new float[p.x().length];
      float[] mean = new float[rows];
      float[] rstd = new float[rows];
      LayerNorm.forward(rows, cols, EPS, seg(p.x()), 0, seg(gamma), 0, seg(beta), 0, seg(y), 0, seg(mean), 0,
          seg(rstd), 0);
      float[] dx = new float[y.length];
      float[] dgamma = new float[cols];
      float[] dbeta = new float[cols];
      LayerNorm.backward(rows, cols, seg(p.x()), 0, seg(gamma), 0, seg(mean), 0, seg(rstd), 0, seg(p.dy()), 0,
          seg(dx), 0, seg(dgamma), 0, seg(dbeta), 0);
      double[] x = Doubles.of(p.x());
      double[] dy = Doubles.of(p.dy());
      NormReference.Forward f = NormReference.layerNorm(rows, cols, EPS, x, Doubles.of(gamma), Doubles.of(beta));
      NormReference.Backward b = NormReference.layerNormBackward(rows, cols, EPS, x, Doubles.of(gamma), dy);
      double[] dgammaBound = new double[cols];
      double[] dbetaBound = new double[cols];
      for (int r = 0; r < rows; r++) {
        int[] members = new int[cols];
        for (int i = 0; i < cols; i++) {
          members[i] = r * cols + i;
        }
        Group grp = Group.of(x, members);
        close("mean", seed, mean[r], f.mean()[r], grp.dmu());
        close("rstd", seed, rstd[r], f.rstd()[r], grp.rho() * grp.s());
        double meanG = 0;
        double meanGX = 0;
        double meanAbsG = 0;
        double meanAbsGX = 0;
        double meanGErr = 0;
        for (int i = 0; i < cols; i++) {
          int at = r * cols + i;
          double xhat = (x[at] - grp.mu()) * grp.s();
          double gi = dy[at] * gamma[i];
          meanG += gi / cols;
          meanGX += gi * xhat / cols;
          meanAbsG += Math.abs(gi) / cols;
          meanAbsGX += Math.abs(gi * xhat) / cols;
          meanGErr += Math.abs(gi) * grp.xhatError(x[at]) / cols;
          double yBound = Math.abs(gamma[i]) * grp.xhatError(x[at]) + U * (Math.abs(xhat * gamma[i]) + Math.abs(f.y()[at]));
          close("y", seed, y[at], f.y()[at], yBound);
          dgammaBound[i] += Math.abs(dy[at]) * grp.xhatError(x[at]) + rows * U * Math.abs(dy[at] * xhat);
          dbetaBound[i] += rows * U * Math.abs(dy[at]);
        }
        for (int i = 0; i < cols; i++) {
          int at = r * cols + i;
          double xhat = (x[at] - grp.mu()) * grp.s();
          double bound = dxBound(grp, grp.s(), dy[at] * gamma[i], xhat, meanG, meanGX, meanAbsG, meanAbsGX, meanGErr,
              b.dx()[at], true);
          close("dx", seed, dx[at], b.dx()[at], bound);
        }
      }
      for (int i = 0; i < cols; i++) {
        close("dgamma", seed, dgamma[i], b.dgamma()[i], dgammaBound[i]);
        close("dbeta", seed, dbeta[i], b.dbeta()[i], dbetaBound[i]);
      }
    });
  }

  @Test
  void batchNormMatchesTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 5, 6, 40);
      int n = p.batch();
      int c = p.channels();
      int s = p.spatial();
      if (n * s < 2) {
        assertThrows(IllegalArgumentException.class, () -> BatchNorm.forwardTraining(n, c, s, EPS, 0.1f,
            seg(p.x()), 0, seg(p.gamma()), 0, seg(p.beta()), 0, seg(new float[p.x().length]), 0, seg(new float[c]), 0,
            seg(new float[c]), 0, seg(new float[c]), 0, seg(new float[c]), 0));
        return;
      }
      float[] y = new float[p.x().length];
      float[] mean = new float[c];
      float[] rstd = new float[c];
      float[] runningMean = new float[c];
      float[] runningVar = new float[c];
      Arrays.fill(runningVar, 1f);
      float momentum = 0.1f;
      BatchNorm.forwardTraining(n, c, s, EPS, momentum, seg(p.x()), 0, seg(p.gamma()), 0, seg(p.beta()), 0, seg(y), 0,
          seg(mean), 0, seg(rstd), 0, seg(runningMean), 0, seg(runningVar), 0);
      float[] dx = new float[y.length];
      float[] dgamma = new float[c];
      float[] dbeta = new float[c];
      BatchNorm.backward(n, c, s, seg(p.x()), 0, seg(p.gamma()), 0, seg(mean), 0, seg(rstd), 0, seg(p.dy()), 0,
          seg(dx), 0, seg(dgamma), 0, seg(dbeta), 0);
      float[] inference = new float[y.length];
      BatchNorm.forwardInference(n, c, s, EPS, seg(p.x()), 0, seg(p.gamma()), 0, seg(p.beta()), 0, seg(runningMean), 0,
          seg(runningVar), 0, seg(inference), 0);
      double[] x = Doubles.of(p.x());
      double[] dy = Doubles.of(p.dy());
      double[] gamma = Arrays.copyOf(Doubles.of(p.gamma()), c);
      double[] beta = Arrays.copyOf(Doubles.of(p.beta()), c);
      NormReference.Forward f = NormReference.batchNorm(n, c, s, EPS, x, gamma, beta);
      NormReference.Backward b = NormReference.batchNormBackward(n, c, s, EPS, x, gamma, dy);
      double[] inferenceRef = NormReference.batchNormInference(n, c, s, EPS, x, gamma, beta, Doubles.of(runningMean),
          Doubles.of(runningVar));
      for (int ch = 0; ch < c; ch++) {
        int[] members = new int[n * s];
        for (int m = 0; m < n * s; m++) {
          members[m] = ((m / s) * c + ch) * s + m % s;
        }
        Group grp = Group.of(x, members);
        close("mean", seed, mean[ch], f.mean()[ch], grp.dmu());
        close("rstd", seed, rstd[ch], f.rstd()[ch], grp.rho() * grp.s());
        // running = 0.9 running + 0.1 stat in float: three roundings, plus the statistic's error.
        double m = n * s;
        double unbiased = grp.var() * m / (m - 1);
        close("running mean", seed, runningMean[ch], momentum * grp.mu(),
            3 * U * Math.abs(momentum * grp.mu()) + momentum * grp.dmu());
        double rv = (1 - momentum) + momentum * unbiased;
        close("running var", seed, runningVar[ch], rv, U * (3 * rv + momentum * unbiased)
            + momentum * ((m + 3) * U * unbiased + grp.dmu() * grp.dmu() * m / (m - 1)));
        double meanD = 0;
        double meanDX = 0;
        double meanAbsD = 0;
        double meanAbsDX = 0;
        double meanDErr = 0;
        double dgammaBound = 0;
        for (int i : members) {
          double xhat = (x[i] - grp.mu()) * grp.s();
          meanD += dy[i] / m;
          meanDX += dy[i] * xhat / m;
          meanAbsD += Math.abs(dy[i]) / m;
          meanAbsDX += Math.abs(dy[i] * xhat) / m;
          meanDErr += Math.abs(dy[i]) * grp.xhatError(x[i]) / m;
          dgammaBound += Math.abs(dy[i]) * grp.xhatError(x[i]) + m * U * Math.abs(dy[i] * xhat);
          close("y", seed, y[i], f.y()[i],
              Math.abs(gamma[ch]) * grp.xhatError(x[i]) + U * (Math.abs(xhat * gamma[ch]) + Math.abs(f.y()[i])));
          // Inference: (x - rm) s' gamma + beta with s' = 1/sqrt(rv + eps) rounded once.
          double sInf = 1 / Math.sqrt(runningVar[ch] + (double) EPS);
          close("inference y", seed, inference[i], inferenceRef[i],
              Math.abs(gamma[ch]) * sInf * Math.abs(x[i] - runningMean[ch]) * 4 * U + U * Math.abs(inferenceRef[i]));
        }
        close("dgamma", seed, dgamma[ch], b.dgamma()[ch], dgammaBound);
        close("dbeta", seed, dbeta[ch], b.dbeta()[ch], m * U * meanAbsD * m);
        for (int i : members) {
          double xhat = (x[i] - grp.mu()) * grp.s();
          double bound = dxBound(grp, gamma[ch] * grp.s(), dy[i], xhat, meanD, meanDX, meanAbsD, meanAbsDX, meanDErr,
              b.dx()[i], false);
          close("dx", seed, dx[i], b.dx()[i], bound);
        }
      }
    });
  }

  private static double[] ones(int n) {
    double[] v = new double[n];
    Arrays.fill(v, 1);
    return v;
  }

  private static MemorySegment seg(float[] values) {
    return MemorySegment.ofArray(values);
  }

  private static void close(String what, long seed, double got, double want, double bound) {
    if (!(Math.abs(got - want) <= bound)) {
      throw new AssertionError(what + " = " + got + " but reference " + want + ": error " + Math.abs(got - want)
          + " > bound " + bound + " (case seed " + seed + ")");
    }
  }
}
