package dev.lanes.kernels.reference;

import dev.lanes.kernels.Activation;

/**
 * Double-precision references for {@link Activation}, written from the textbook definitions
 * rather than the kernel's stable rearrangements, so that the two agree only if the rearrangements
 * are right. PReLU's reference is {@link #prelu} and {@link #preluBackward}.
 */
public final class ActivationReference {
  /** SELU's constants, exactly as the kernel uses them (rounded to float, as PyTorch does). */
  private static final double SELU_SCALE = 1.0507009873554804934193349852946f;
  private static final double SELU_ALPHA = 1.6732632423543772848170429916717f;
  private static final double GELU_CUBIC = 0.044715f;
  private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

  private ActivationReference() {}

  public static double forward(Activation f, double x) {
    double a = f.alpha();
    return switch (f.function()) {
      case RELU -> Double.isNaN(x) ? x : Math.max(x, 0);
      case LEAKY_RELU -> x > 0 ? x : a * x;
      case ELU -> x > 0 ? x : a * Math.expm1(x);
      case SELU -> SELU_SCALE * (x > 0 ? x : SELU_ALPHA * Math.expm1(x));
      case SIGMOID -> 1 / (1 + Math.exp(-x));
      case TANH -> Math.tanh(x);
      // log(1 + e^x), with x pulled out for x > 0 so that e^x cannot overflow the double.
      case SOFTPLUS -> x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
      case GELU -> x * normalCdf(x);
      // (1 + tanh t)/2 = 1/(1 + e^-2t), an identity; the left side cancels to 0 in double for t < -19.
      case GELU_TANH -> x / (1 + Math.exp(-2 * geluTanhArgument(x)));
      case STEP -> x > 0 ? 1 : 0;
    };
  }

  /** {@code f'(x)}; STEP has none. */
  public static double derivative(Activation f, double x) {
    double a = f.alpha();
    boolean gelu = f.function() == Activation.Function.GELU || f.function() == Activation.Function.GELU_TANH;
    if (gelu && Double.isInfinite(x)) {
      return x > 0 ? 1 : 0; // the limits; the formulas below would give inf * 0
    }
    return switch (f.function()) {
      case RELU -> x > 0 ? 1 : 0;
      case LEAKY_RELU -> x > 0 ? 1 : a;
      case ELU -> x > 0 ? 1 : a * Math.exp(x);
      case SELU -> SELU_SCALE * (x > 0 ? 1 : SELU_ALPHA * Math.exp(x));
      // s (1 - s) = 1 / (4 cosh^2(x/2)); the left side rounds to 0 in double for |x| > 37.
      case SIGMOID -> 0.25 / (Math.cosh(x / 2) * Math.cosh(x / 2));
      case TANH -> 1 / (Math.cosh(x) * Math.cosh(x));
      case SOFTPLUS -> 1 / (1 + Math.exp(-x));
      case GELU -> normalCdf(x) + x * Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
      case GELU_TANH -> {
        double t = geluTanhArgument(x);
        double dt = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
        yield 1 / (1 + Math.exp(-2 * t)) + 0.5 * x * dt / (Math.cosh(t) * Math.cosh(t));
      }
      case STEP -> throw new UnsupportedOperationException("STEP has no derivative");
    };
  }

  private static double geluTanhArgument(double x) {
    return SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
  }

  public static double[] forward(Activation f, double[] x) {
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = forward(f, x[i]);
    }
    return y;
  }

  /** {@code dx_i = dy_i f'(x_i)}. */
  public static double[] backward(Activation f, double[] x, double[] dy) {
    double[] dx = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      dx[i] = dy[i] * derivative(f, x[i]);
    }
    return dx;
  }

  /** PReLU over {@code [N, C, S]} with {@code a.length} = C slopes or 1 shared. */
  public static double[] prelu(int batch, int channels, int spatial, double[] x, double[] a) {
    double[] y = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double slope = a[a.length == 1 ? 0 : i / spatial % channels];
      y[i] = x[i] > 0 ? x[i] : slope * x[i];
    }
    return y;
  }

  /** PReLU backward: {@code [dx, da]}. */
  public static double[][] preluBackward(int batch, int channels, int spatial, double[] x, double[] a,
      double[] dy) {
    double[] dx = new double[x.length];
    double[] da = new double[a.length];
    for (int i = 0; i < x.length; i++) {
      int c = a.length == 1 ? 0 : i / spatial % channels;
      dx[i] = x[i] > 0 ? dy[i] : a[c] * dy[i];
      if (!(x[i] > 0)) {
        da[c] += x[i] * dy[i];
      }
    }
    return new double[][] {dx, da};
  }

  /** {@code Phi(x) = erfc(-x/sqrt 2) / 2}, to about 1e-14 relative. */
  public static double normalCdf(double x) {
    return erfc(-x / Math.sqrt(2)) / 2;
  }

  /**
   * erfc to about 1e-14 relative: for {@code |z| < 2} from the Maclaurin series of erf (at most
   * a 160-fold loss to cancellation at z = 2, from terms near 40 to erfc(2) = 0.0047... times 2/sqrt(pi)),
   * for {@code z >= 2} from the continued fraction
   * {@code erfc z = e^{-z^2}/sqrt(pi) * 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))}, evaluated
   * from 200 levels down, for {@code z <= -2} as {@code 2 - erfc(-z)}.
   */
  public static double erfc(double z) {
    if (Double.isNaN(z)) {
      return z;
    }
    if (z <= -2) {
      return 2 - erfc(-z);
    }
    if (z < 2) {
      double term = z;
      double sum = z;
      for (int n = 1; n < 200 && Math.abs(term) > 1e-18 * Math.abs(sum); n++) {
        term *= -z * z / n;
        sum += term / (2 * n + 1);
      }
      return 1 - 2 / Math.sqrt(Math.PI) * sum;
    }
    double fraction = z;
    for (int k = 200; k >= 1; k--) {
      fraction = z + (k / 2.0) / fraction;
    }
    return Math.exp(-z * z) / Math.sqrt(Math.PI) / fraction;
  }
}
