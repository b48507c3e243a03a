package dev.lanes.verification;

import java.util.function.Function;

/**
 * Checks an analytic gradient against central differences, in double, for any function
 * {@code f: R^n -> R^m} and upstream gradient {@code g}: the scalar loss is
 * {@code L(x) = <g, f(x)>}, so {@code dL/dx_i} is what a backward pass given {@code g} returns.
 *
 * <p>Each checked coordinate must satisfy
 * {@code |numeric - analytic| <= 1e-6 |analytic| + quotientError}, where the quotient's own error
 * is derived by the caller for its function (see {@link #roundoff}) instead of being a tuned
 * floor. Use it on inputs away from kinks (ReLU at 0, max ties), where f is smooth within eps.
 */
public final class NumericalGradient {
  /** The step of the central difference. */
  public static final double EPS = 1e-6;
  /** The relative error allowed on top of the quotient's own error. */
  public static final double RELATIVE = 1e-6;
  private static final double UNIT_ROUNDOFF = Math.scalb(1.0, -53);

  private NumericalGradient() {}

  /**
   * The roundoff part of the quotient's error: if every output of f is a double sum of at most
   * {@code terms} terms whose magnitudes, weighted by |g|, add up to {@code weightedMagnitude}, each
   * evaluation of L is off by at most {@code (terms + 4) u sum} ({@code u = 2^-53}, the 4 for the
   * dot with g), and the quotient divides the difference of two such values by {@code 2 eps}.
   */
  public static double roundoff(int terms, double weightedMagnitude) {
    return (terms + 4) * UNIT_ROUNDOFF * weightedMagnitude / EPS;
  }

  /**
   * Asserts {@code analytic[i] ~ dL/dx_i} for up to {@code maxCoordinates} coordinates spread
   * evenly over x (all of them if x is that short).
   *
   * @throws AssertionError naming {@code what}, the coordinate and the numbers
   */
  public static void check(String what, double[] x, double[] upstream, double[] analytic,
      Function<double[], double[]> f, double quotientError, int maxCoordinates) {
    if (analytic.length != x.length) {
      throw new AssertionError(what + ": gradient has " + analytic.length + " entries for " + x.length + " inputs");
    }
    int step = Math.max(1, (x.length + maxCoordinates - 1) / maxCoordinates);
    for (int i = 0; i < x.length; i += step) {
      double saved = x[i];
      x[i] = saved + EPS;
      double plus = dot(upstream, f.apply(x));
      x[i] = saved - EPS;
      double minus = dot(upstream, f.apply(x));
      x[i] = saved;
      double numeric = (plus - minus) / (2 * EPS);
      double allowed = RELATIVE * Math.abs(analytic[i]) + quotientError;
      if (!(Math.abs(numeric - analytic[i]) <= allowed)) {
        throw new AssertionError(what + "[" + i + "]: central difference " + numeric + " vs backward "
            + analytic[i] + ", allowed " + allowed);
      }
    }
  }

  static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }
}
