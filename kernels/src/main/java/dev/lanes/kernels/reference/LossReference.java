package dev.lanes.kernels.reference;

import dev.lanes.kernels.reference.SoftmaxReference.LossAndGradient;

/** Double-precision references for {@link dev.lanes.kernels.Loss}, from the definitions. */
public final class LossReference {
  private LossReference() {}

  /**
   * {@code mean(-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)))}, gradient
   * {@code (sigmoid(x) - t) / n}. The logs are taken of sigmoid written with the exponential of
   * -|x|, so that double does not round sigmoid to 1 for the inputs the tests use.
   */
  public static LossAndGradient binaryCrossEntropyWithLogits(double[] x, double[] t) {
    int n = x.length;
    double loss = 0;
    double[] grad = new double[n];
    for (int i = 0; i < n; i++) {
      double e = Math.exp(-Math.abs(x[i]));
      // log sigmoid(x) and log(1 - sigmoid(x)) = log sigmoid(-x)
      double logP = x[i] >= 0 ? -Math.log1p(e) : x[i] - Math.log1p(e);
      double logQ = x[i] >= 0 ? -x[i] - Math.log1p(e) : -Math.log1p(e);
      loss += -t[i] * logP - (1 - t[i]) * logQ;
      double sigmoid = x[i] >= 0 ? 1 / (1 + e) : e / (1 + e);
      grad[i] = (sigmoid - t[i]) / n;
    }
    return new LossAndGradient(loss / n, grad);
  }

  /** {@code mean((p - t)^2)}, gradient {@code 2 (p - t) / n}. */
  public static LossAndGradient meanSquaredError(double[] p, double[] t) {
    int n = p.length;
    double loss = 0;
    double[] grad = new double[n];
    for (int i = 0; i < n; i++) {
      double d = p[i] - t[i];
      loss += d * d;
      grad[i] = 2 * d / n;
    }
    return new LossAndGradient(loss / n, grad);
  }
}
