package dev.lanes.kernels.reference;

/**
 * Double-precision references for {@link dev.lanes.kernels.LayerNorm} and
 * {@link dev.lanes.kernels.BatchNorm}, from the definitions. Both normalize groups of values: a
 * row of {@code [rows, cols]} for layer norm, a channel of {@code [N, C, S]} for batch norm; the
 * group helpers below are shared, and only the indexing differs.
 */
public final class NormReference {
  private NormReference() {}

  /** Forward outputs: y, and the per-group mean and rstd = 1/sqrt(biased var + eps). */
  public record Forward(double[] y, double[] mean, double[] rstd) {}

  /** Backward outputs. */
  public record Backward(double[] dx, double[] dgamma, double[] dbeta) {}

  /** The flat indices of group g's members, and the affine parameter index of each member. */
  private interface Layout {
    int groups();

    int size();

    int index(int group, int member);

    int parameter(int group, int member);
  }

  private static Layout layer(int rows, int cols) {
    return new Layout() {
      public int groups() { return rows; }
      public int size() { return cols; }
      public int index(int g, int m) { return g * cols + m; }
      public int parameter(int g, int m) { return m; }
    };
  }

  private static Layout batch(int batch, int channels, int spatial) {
    return new Layout() {
      public int groups() { return channels; }
      public int size() { return batch * spatial; }
      public int index(int c, int m) { return ((m / spatial) * channels + c) * spatial + m % spatial; }
      public int parameter(int c, int m) { return c; }
    };
  }

  public static Forward layerNorm(int rows, int cols, double eps, double[] x, double[] gamma, double[] beta) {
    return forward(layer(rows, cols), eps, x, gamma, beta);
  }

  public static Backward layerNormBackward(int rows, int cols, double eps, double[] x, double[] gamma,
      double[] dy) {
    return backward(layer(rows, cols), eps, x, gamma, dy, cols);
  }

  public static Forward batchNorm(int batch, int channels, int spatial, double eps, double[] x, double[] gamma,
      double[] beta) {
    return forward(batch(batch, channels, spatial), eps, x, gamma, beta);
  }

  public static Backward batchNormBackward(int batch, int channels, int spatial, double eps, double[] x,
      double[] gamma, double[] dy) {
    return backward(batch(batch, channels, spatial), eps, x, gamma, dy, channels);
  }

  /** Inference: {@code (x - runningMean[c]) / sqrt(runningVar[c] + eps) gamma[c] + beta[c]}. */
  public static double[] batchNormInference(int batch, int channels, int spatial, double eps, double[] x,
      double[] gamma, double[] beta, double[] runningMean, double[] runningVar) {
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      int c = i / spatial % channels;
      y[i] = (x[i] - runningMean[c]) / Math.sqrt(runningVar[c] + eps) * gamma[c] + beta[c];
    }
    return y;
  }

  private static Forward forward(Layout l, double eps, double[] x, double[] gamma, double[] beta) {
    double[] y = new double[x.length];
    double[] mean = new double[l.groups()];
    double[] rstd = new double[l.groups()];
    for (int g = 0; g < l.groups(); g++) {
      double sum = 0;
      for (int m = 0; m < l.size(); m++) {
        sum += x[l.index(g, m)];
      }
      mean[g] = sum / l.size();
      double squares = 0;
      for (int m = 0; m < l.size(); m++) {
        double d = x[l.index(g, m)] - mean[g];
        squares += d * d;
      }
      rstd[g] = 1 / Math.sqrt(squares / l.size() + eps);
      for (int m = 0; m < l.size(); m++) {
        int i = l.index(g, m);
        int p = l.parameter(g, m);
        y[i] = (x[i] - mean[g]) * rstd[g] * gamma[p] + beta[p];
      }
    }
    return new Forward(y, mean, rstd);
  }

  /**
   * With {@code xhat = (x - mean) rstd} and {@code g = dy gamma}, per group of M members:
   * {@code dx = rstd (g - mean(g) - xhat mean(g xhat))}; dgamma and dbeta sum {@code dy xhat} and
   * dy over every member that uses the parameter.
   */
  private static Backward backward(Layout l, double eps, double[] x, double[] gamma, double[] dy, int parameters) {
    Forward f = forward(l, eps, x, gamma, new double[gamma.length]);
    double[] dx = new double[x.length];
    double[] dgamma = new double[parameters];
    double[] dbeta = new double[parameters];
    for (int g = 0; g < l.groups(); g++) {
      double sumG = 0;
      double sumGX = 0;
      for (int m = 0; m < l.size(); m++) {
        int i = l.index(g, m);
        int p = l.parameter(g, m);
        double xhat = (x[i] - f.mean()[g]) * f.rstd()[g];
        double grad = dy[i] * gamma[p];
        sumG += grad;
        sumGX += grad * xhat;
        dgamma[p] += dy[i] * xhat;
        dbeta[p] += dy[i];
      }
      for (int m = 0; m < l.size(); m++) {
        int i = l.index(g, m);
        double xhat = (x[i] - f.mean()[g]) * f.rstd()[g];
        double grad = dy[i] * gamma[l.parameter(g, m)];
        dx[i] = f.rstd()[g] * (grad - sumG / l.size() - xhat * sumGX / l.size());
      }
    }
    return new Backward(dx, dgamma, dbeta);
  }
}
