package dev.lanes.kernels.reference;

/**
 * Double-precision references for {@link dev.lanes.kernels.Softmax}, over the last axis of a
 * row-major {@code rows x cols} matrix (contiguous rows). The same algorithm as the kernel
 * (subtract the row maximum, exponentiate, normalize), so special values behave alike: a row that
 * is all -inf, or holds +inf or NaN, gives NaN, as in PyTorch.
 */
public final class SoftmaxReference {
  private SoftmaxReference() {}

  /** {@code y[r][i] = exp(x[r][i] - max_r) / sum_j exp(x[r][j] - max_r)}. */
  public static double[] forward(int rows, int cols, double[] x) {
    double[] y = new double[rows * cols];
    for (int r = 0; r < rows; r++) {
      double max = rowMax(x, r * cols, cols);
      double sum = sumExp(x, r * cols, cols, max);
      for (int i = 0; i < cols; i++) {
        y[r * cols + i] = Math.exp(x[r * cols + i] - max) / sum;
      }
    }
    return y;
  }

  /** {@code z[r][i] = (x[r][i] - max_r) - log(sum_j exp(x[r][j] - max_r))}. */
  public static double[] logForward(int rows, int cols, double[] x) {
    double[] z = new double[rows * cols];
    for (int r = 0; r < rows; r++) {
      double max = rowMax(x, r * cols, cols);
      double logSum = Math.log(sumExp(x, r * cols, cols, max));
      for (int i = 0; i < cols; i++) {
        z[r * cols + i] = (x[r * cols + i] - max) - logSum;
      }
    }
    return z;
  }

  /** Softmax backward from its output y: {@code dx_i = y_i (dy_i - sum_j dy_j y_j)}. */
  public static double[] backward(int rows, int cols, double[] y, double[] dy) {
    double[] dx = new double[rows * cols];
    for (int r = 0; r < rows; r++) {
      double dot = 0;
      for (int j = 0; j < cols; j++) {
        dot += dy[r * cols + j] * y[r * cols + j];
      }
      for (int i = 0; i < cols; i++) {
        dx[r * cols + i] = y[r * cols + i] * (dy[r * cols + i] - dot);
      }
    }
    return dx;
  }

  /** Log-softmax backward from its output z: {@code dx_i = dy_i - exp(z_i) sum_j dy_j}. */
  public static double[] logBackward(int rows, int cols, double[] z, double[] dy) {
    double[] dx = new double[rows * cols];
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      for (int j = 0; j < cols; j++) {
        sum += dy[r * cols + j];
      }
      for (int i = 0; i < cols; i++) {
        dx[r * cols + i] = dy[r * cols + i] - Math.exp(z[r * cols + i]) * sum;
      }
    }
    return dx;
  }

  /** A loss value and its gradient. */
  public record LossAndGradient(double loss, double[] gradient) {}

  /**
   * Mean cross-entropy against labels, ignoring rows labelled {@code ignoreIndex}:
   * {@code loss = (1/count) sum_r -log softmax(x_r)[label_r]}, gradient
   * {@code (softmax(x_r) - onehot(label_r)) / count} (0 on ignored rows).
   */
  public static LossAndGradient crossEntropy(int rows, int cols, double[] x, int[] labels, int ignoreIndex) {
    int count = 0;
    for (int r = 0; r < rows; r++) {
      count += labels[r] == ignoreIndex ? 0 : 1;
    }
    double[] z = logForward(rows, cols, x);
    double[] grad = new double[rows * cols];
    double loss = 0;
    for (int r = 0; r < rows; r++) {
      if (labels[r] == ignoreIndex) {
        continue;
      }
      loss -= z[r * cols + labels[r]];
      for (int i = 0; i < cols; i++) {
        grad[r * cols + i] = (Math.exp(z[r * cols + i]) - (i == labels[r] ? 1 : 0)) / count;
      }
    }
    return new LossAndGradient(loss / count, grad);
  }

  /**
   * Mean cross-entropy against probability targets t: {@code loss = -(1/rows) sum t log softmax(x)},
   * gradient {@code (softmax(x_r) sum_i t_ri - t_r) / rows}.
   */
  public static LossAndGradient crossEntropyProbabilities(int rows, int cols, double[] x, double[] t) {
    double[] z = logForward(rows, cols, x);
    double[] grad = new double[rows * cols];
    double loss = 0;
    for (int r = 0; r < rows; r++) {
      double mass = 0;
      for (int i = 0; i < cols; i++) {
        loss -= t[r * cols + i] * z[r * cols + i];
        mass += t[r * cols + i];
      }
      for (int i = 0; i < cols; i++) {
        grad[r * cols + i] = (Math.exp(z[r * cols + i]) * mass - t[r * cols + i]) / rows;
      }
    }
    return new LossAndGradient(loss / rows, grad);
  }

  private static double sumExp(double[] x, int from, int cols, double max) {
    double sum = 0;
    for (int i = 0; i < cols; i++) {
      sum += Math.exp(x[from + i] - max);
    }
    return sum;
  }

  private static double rowMax(double[] x, int from, int cols) {
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < cols; i++) {
      double v = x[from + i];
      max = Double.isNaN(v) || Double.isNaN(max) ? Double.NaN : Math.max(max, v);
    }
    return max;
  }
}
