package dev.lanes.kernels.reference;

/**
 * Double-precision references for one step of each {@link dev.lanes.kernels.Optimizer}, written
 * from PyTorch's update equations; they update their arrays in place.
 */
public final class OptimizerReference {
  private OptimizerReference() {}

  public static void sgd(double lr, double wd, double[] p, double[] g) {
    for (int i = 0; i < p.length; i++) {
      p[i] -= lr * (g[i] + wd * p[i]);
    }
  }

  public static void momentum(double lr, double mu, double wd, boolean nesterov, double[] p, double[] g,
      double[] v) {
    for (int i = 0; i < p.length; i++) {
      double grad = g[i] + wd * p[i];
      v[i] = mu * v[i] + grad;
      p[i] -= lr * (nesterov ? grad + mu * v[i] : v[i]);
    }
  }

  public static void adagrad(double lr, double eps, double wd, double[] p, double[] g, double[] s) {
    for (int i = 0; i < p.length; i++) {
      double grad = g[i] + wd * p[i];
      s[i] += grad * grad;
      p[i] -= lr * grad / (Math.sqrt(s[i]) + eps);
    }
  }

  public static void rmsprop(double lr, double alpha, double eps, double wd, double[] p, double[] g, double[] a) {
    for (int i = 0; i < p.length; i++) {
      double grad = g[i] + wd * p[i];
      a[i] = alpha * a[i] + (1 - alpha) * grad * grad;
      p[i] -= lr * grad / (Math.sqrt(a[i]) + eps);
    }
  }

  /** Adam (decoupled = false, L2 decay in the gradient) or AdamW (decoupled = true). */
  public static void adam(double lr, double beta1, double beta2, double eps, double wd, boolean decoupled, long t,
      double[] p, double[] g, double[] m, double[] v) {
    for (int i = 0; i < p.length; i++) {
      if (decoupled) {
        p[i] -= lr * wd * p[i];
      }
      double grad = decoupled ? g[i] : g[i] + wd * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * grad;
      v[i] = beta2 * v[i] + (1 - beta2) * grad * grad;
      double mHat = m[i] / (1 - Math.pow(beta1, t));
      double vHat = v[i] / (1 - Math.pow(beta2, t));
      p[i] -= lr * mHat / (Math.sqrt(vHat) + eps);
    }
  }
}
