package dev.lanes.verification;

/** Widening and absolute values of test data, for comparisons against double references. */
public final class Doubles {
  private Doubles() {}

  public static double[] of(float[] v) {
    if (v == null) {
      return null;
    }
    double[] d = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      d[i] = v[i];
    }
    return d;
  }

  /** {@code |v|} elementwise, widened; null stays null. */
  public static double[] abs(float[] v) {
    if (v == null) {
      return null;
    }
    double[] d = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      d[i] = Math.abs(v[i]);
    }
    return d;
  }

  public static double dot(double[] a, double[] b) {
    return NumericalGradient.dot(a, b);
  }

  /** {@code sum |a_i| |b_i|}. */
  public static double absDot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += Math.abs(a[i] * b[i]);
    }
    return s;
  }
}
