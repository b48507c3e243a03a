package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * Layer normalization over the last axis of a row-major {@code [rows, cols]} matrix, PyTorch's
 * {@code layer_norm(x, [cols], gamma, beta, eps)}:
 * {@code y = (x - mean) / sqrt(var + eps) * gamma + beta}, with the biased variance of each row.
 *
 * <p>The forward saves each row's mean and {@code rstd = 1/sqrt(var + eps)} ({@code [rows]}
 * each), which the backward takes. The variance is computed in two passes (the mean first, then
 * the squared deviations), so that rows with a large mean and a small spread do not cancel.
 * Backward: {@code dx = rstd (g - mean(g) - xhat mean(g xhat))} with {@code g = dy gamma} and
 * {@code xhat = (x - mean) rstd}; {@code dgamma = sum over rows of dy xhat} and
 * {@code dbeta = sum over rows of dy}, both overwritten. Every call checks its buffers first.
 */
public final class LayerNorm {
  private static final ThreadLocal<float[]> SUMS = ThreadLocal.withInitial(() -> new float[2]);

  private LayerNorm() {}

  /** Forward; mean and rstd ({@code [rows]} each) are written for the backward. y may be x. */
  public static void forward(int rows, int cols, float eps, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment beta, long betaOffset, MemorySegment y, long yOffset, MemorySegment mean,
      long meanOffset, MemorySegment rstd, long rstdOffset) {
    checkShape(rows, cols, eps);
    matrix("x", x, xOffset, rows, cols, false);
    vector("gamma", gamma, gammaOffset, cols, false);
    vector("beta", beta, betaOffset, cols, false);
    matrix("y", y, yOffset, rows, cols, true);
    vector("mean", mean, meanOffset, rows, true);
    vector("rstd", rstd, rstdOffset, rows, true);
    for (long r = 0; r < rows; r++) {
      long xAt = 4 * (xOffset + r * cols);
      float mu = ChannelSums.sum(x, xAt, cols) / cols;
      float variance = NormLoops.squaredDeviations(cols, x, xAt, mu) / cols;
      float inverse = (float) (1 / Math.sqrt((double) variance + eps));
      mean.set(JAVA_FLOAT_UNALIGNED, 4 * (meanOffset + r), mu);
      rstd.set(JAVA_FLOAT_UNALIGNED, 4 * (rstdOffset + r), inverse);
      NormLoops.normalizeAffine(cols, x, xAt, mu, inverse, gamma, 4 * gammaOffset, beta, 4 * betaOffset, y,
          4 * (yOffset + r * cols));
    }
  }

  /** Backward from the forward's input x and its saved mean and rstd. dx may be dy. */
  public static void backward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset, MemorySegment dy,
      long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma, long dgammaOffset, MemorySegment dbeta,
      long dbetaOffset) {
    checkShape(rows, cols, 0);
    matrix("x", x, xOffset, rows, cols, false);
    vector("gamma", gamma, gammaOffset, cols, false);
    vector("mean", mean, meanOffset, rows, false);
    vector("rstd", rstd, rstdOffset, rows, false);
    matrix("dy", dy, dyOffset, rows, cols, false);
    matrix("dx", dx, dxOffset, rows, cols, true);
    vector("dgamma", dgamma, dgammaOffset, cols, true);
    vector("dbeta", dbeta, dbetaOffset, cols, true);
    SegmentLoops.fill(dgamma, 4 * dgammaOffset, cols, 0f);
    SegmentLoops.fill(dbeta, 4 * dbetaOffset, cols, 0f);
    float[] sums = SUMS.get();
    for (long r = 0; r < rows; r++) {
      long xAt = 4 * (xOffset + r * cols);
      long dyAt = 4 * (dyOffset + r * cols);
      float mu = mean.get(JAVA_FLOAT_UNALIGNED, 4 * (meanOffset + r));
      float inverse = rstd.get(JAVA_FLOAT_UNALIGNED, 4 * (rstdOffset + r));
      NormLoops.rowGradientSums(cols, x, xAt, mu, inverse, dy, dyAt, gamma, 4 * gammaOffset, dgamma,
          4 * dgammaOffset, dbeta, 4 * dbetaOffset, sums);
      NormLoops.rowInputGradient(cols, x, xAt, mu, inverse, dy, dyAt, gamma, 4 * gammaOffset, sums[0] / cols,
          sums[1] / cols, dx, 4 * (dxOffset + r * cols));
    }
  }

  static void checkShape(int rows, int cols, float eps) {
    Checks.nonNegative(rows, "rows");
    Checks.positive(cols, "cols");
    if (!(eps >= 0) || Float.isInfinite(eps)) {
      throw new IllegalArgumentException("eps = " + eps + " must be finite and >= 0");
    }
  }

  private static void matrix(String name, MemorySegment s, long offset, int rows, int cols, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[rows,cols]", rows, cols, -1, -1, offset, Checks.floats(s));
  }

  static void vector(String name, MemorySegment s, long offset, int length, boolean written) {
    Elementwise.span(length, s, offset, name, written);
  }
}
