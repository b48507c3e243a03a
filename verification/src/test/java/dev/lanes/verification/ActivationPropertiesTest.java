package dev.lanes.verification;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Activation;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.ActivationReference;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * Activations: the references' derivatives against central differences of their forward, and
 * the kernels against the references within the bounds of {@link Activation}'s accuracy table,
 * which are restated per function below with their derivation.
 */
class ActivationPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final double TINY = Math.scalb(1.0, -126);
  /**
   * The normal-tail fit's own relative error: its largest on a 2*10^7-point grid against erfcx in
   * double, 2.063e-8 (see Activation's tail constants), rounded up.
   */
  private static final double TAIL_FIT = 2.1e-8;
  private static final double K = Math.sqrt(2 / Math.PI);

  private static final List<Activation> ALL = List.of(Activation.RELU, Activation.leakyRelu(0.01f),
      Activation.leakyRelu(-0.3f), Activation.elu(1f), Activation.elu(0.5f), Activation.SELU, Activation.SIGMOID,
      Activation.TANH, Activation.SOFTPLUS, Activation.GELU, Activation.GELU_TANH, Activation.STEP);

  /** Random activation input: a function, a length, a magnitude and a content seed. */
  record Case(Activation f, int n, double scale, boolean specials, long seed) {
    static Gen<Case> cases() {
      Gen<Activation> functions = SourceDSL.integers().between(0, ALL.size() - 1).map(ALL::get);
      Gen<Double> scales = SourceDSL.integers().between(0, 4).map(i -> new double[] {0.5, 4, 30, 1e4, 1e30}[i]);
      // Lengths 0 to 150, with 0 and 1 drawn 10 times as often as the others: uniform over 151,
      // a run of 600 cases missed one of them about 4% of the time; now about e^-35.
      Gen<Integer> lengths = SourceDSL.integers().between(0, 168).map(i -> i < 20 ? i % 2 : i - 18);
      return functions.zip(lengths, scales, SourceDSL.booleans().all(), SourceDSL.longs().all(), Case::new);
    }

    float[] x() {
      SplittableRandom random = new SplittableRandom(seed);
      float[] x = new float[n];
      float[] special = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f};
      for (int i = 0; i < n; i++) {
        x[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
        if (specials && random.nextInt(10) == 0) {
          x[i] = special[random.nextInt(special.length)];
        }
      }
      return x;
    }

    float[] dy() {
      SplittableRandom random = new SplittableRandom(~seed);
      float[] dy = new float[n];
      for (int i = 0; i < n; i++) {
        dy[i] = (float) (random.nextDouble() * 4 - 2);
      }
      return dy;
    }
  }

  // ---- The references' derivatives against numerical differentiation, in double ----

  @Test
  void referenceDerivativesMatchCentralDifferences() {
    Gen<Activation> functions = SourceDSL.integers().between(0, ALL.size() - 2).map(ALL::get); // all but STEP
    Properties.qt(200).forAll(functions, SourceDSL.longs().all()).checkAssert((f, seed) -> {
      SplittableRandom random = new SplittableRandom(seed);
      int n = 8;
      double[] x = new double[n];
      double[] w = new double[n];
      for (int i = 0; i < n; i++) {
        // Away from the kink at 0 of ReLU, LeakyReLU and ELU (eps = 1e-6 never crosses it).
        double magnitude = 0.01 + random.nextDouble() * 8;
        x[i] = random.nextBoolean() ? magnitude : -magnitude;
        w[i] = random.nextDouble() * 2 - 1;
      }
      double[] analytic = ActivationReference.backward(f, x, w);
      double[] y = ActivationReference.forward(f, x);
      // Each f(x_i) is a handful (< 30) of double operations; the truncation of the central
      // difference is eps^2 |f'''| / 6, and |f'''| < 6 on [-8, 8] for every function here.
      double quotientError = NumericalGradient.roundoff(30, Doubles.absDot(w, y)) + 1e-12 * Doubles.absDot(w, ones(n));
      NumericalGradient.check(f.toString(), x, w, analytic, xs -> ActivationReference.forward(f, xs), quotientError, n);
    });
  }

  @Test
  void preluReferenceGradientsMatchCentralDifferences() {
    Properties.qt(100).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int batch = 1 + random.nextInt(3);
      int channels = 1 + random.nextInt(4);
      int spatial = 1 + random.nextInt(3);
      double[] a = new double[random.nextBoolean() ? 1 : channels];
      double[] x = new double[batch * channels * spatial];
      double[] w = new double[x.length];
      for (int i = 0; i < x.length; i++) {
        double magnitude = 0.01 + random.nextDouble() * 4;
        x[i] = random.nextBoolean() ? magnitude : -magnitude;
        w[i] = random.nextDouble() * 2 - 1;
      }
      for (int c = 0; c < a.length; c++) {
        a[c] = random.nextDouble() - 0.5;
      }
      double[][] grads = ActivationReference.preluBackward(batch, channels, spatial, x, a, w);
      double[] y = ActivationReference.prelu(batch, channels, spatial, x, a);
      // Piecewise linear: no truncation; each output is one product.
      double quotientError = NumericalGradient.roundoff(x.length, Doubles.absDot(w, y));
      NumericalGradient.check("prelu dx", x, w, grads[0],
          xs -> ActivationReference.prelu(batch, channels, spatial, xs, a), quotientError, x.length);
      NumericalGradient.check("prelu da", a, w, grads[1],
          as -> ActivationReference.prelu(batch, channels, spatial, x, as), quotientError, a.length);
    });
  }

  private static double[] ones(int n) {
    double[] v = new double[n];
    java.util.Arrays.fill(v, 1);
    return v;
  }

  // ---- The kernels against the references ----

  @Test
  void kernelsMatchTheReferenceWithinTheirStatedBounds() {
    Set<Activation.Function> seen = EnumSet.noneOf(Activation.Function.class);
    Set<Integer> lengths = ConcurrentHashMap.newKeySet();
    Properties.qt(600).forAll(Case.cases()).checkAssert(c -> {
      seen.add(c.f().function());
      lengths.add(c.n());
      float[] x = c.x();
      float[] y = new float[c.n()];
      c.f().forward(c.n(), x, 0, y, 0);
      for (int i = 0; i < c.n(); i++) {
        double ref = ActivationReference.forward(c.f(), x[i]);
        expectClose("forward", c, i, x[i], y[i], ref, forwardBound(c.f(), x[i], ref));
      }
      if (c.f().function() == Activation.Function.STEP) {
        assertThrows(UnsupportedOperationException.class, () -> c.f().backward(c.n(), x, 0, y, 0, y, 0));
        return;
      }
      float[] dy = c.dy();
      float[] dx = new float[c.n()];
      c.f().backward(c.n(), x, 0, dy, 0, dx, 0);
      for (int i = 0; i < c.n(); i++) {
        double ref = dy[i] * ActivationReference.derivative(c.f(), x[i]);
        expectClose("backward", c, i, x[i], dx[i], ref, backwardBound(c.f(), x[i]) * Math.abs(dy[i]));
      }
    });
    assertTrue(seen.size() == Activation.Function.values().length, "functions covered: " + seen);
    assertTrue(lengths.contains(0) && lengths.contains(1), "lengths 0 and 1 must be drawn: " + lengths.size());
  }

  /**
   * GELU's normal-tail fit swept densely: 2M arguments evenly over [-16, 16] (the fit covers
   * |x| <= 14; past it only the absolute TINY term counts), forward and backward, each against its
   * stated bound. The random cases above draw few points from any one stretch of the fit.
   */
  @Test
  void geluIsWithinItsBoundsAcrossTheFit() {
    int n = 2_000_000;
    float[] x = new float[n];
    float[] ones = new float[n];
    for (int i = 0; i < n; i++) {
      x[i] = (float) (-16 + 32.0 * i / (n - 1));
      ones[i] = 1f;
    }
    float[] y = new float[n];
    float[] dx = new float[n];
    Activation.GELU.forward(n, x, 0, y, 0, Parallelism.sequential());
    Activation.GELU.backward(n, x, 0, ones, 0, dx, 0, Parallelism.sequential());
    for (int i = 0; i < n; i++) {
      double ref = ActivationReference.forward(Activation.GELU, x[i]);
      double error = Math.abs(y[i] - ref);
      double bound = forwardBound(Activation.GELU, x[i], ref);
      assertTrue(error <= bound, "gelu(" + x[i] + ") = " + y[i] + ", reference " + ref + ", error " + error
          + " over bound " + bound);
      double slope = ActivationReference.derivative(Activation.GELU, x[i]);
      double slopeError = Math.abs(dx[i] - slope);
      double slopeBound = backwardBound(Activation.GELU, x[i]);
      assertTrue(slopeError <= slopeBound, "gelu'(" + x[i] + ") = " + dx[i] + ", reference " + slope
          + ", error " + slopeError + " over bound " + slopeBound);
    }
  }

  /**
   * The forward bounds of {@link Activation}'s table, relative to |f(x)| unless said otherwise,
   * first order in u, plus TINY where a float intermediate may flush to zero.
   */
  private static double forwardBound(Activation f, double x, double ref) {
    double r = Math.abs(ref);
    return switch (f.function()) {
      case RELU, STEP -> 0;
      case LEAKY_RELU -> U * r; // one product
      case ELU -> 6 * U * r; // expm1NonPositive 5u and the product by alpha
      case SELU -> 7 * U * r; // lambda*alpha rounded, expm1NonPositive 5u, the product
      case SIGMOID -> 5 * U * r + TINY; // exp 3u, the add, the division
      case TANH -> 6 * U * r; // derived in VectorMath.tanh
      case SOFTPLUS -> 9 * U * r + TINY; // exp 3u carried through log1p, log1pUnit 5u, the add
      // tail fit 2.1e-8; t 2u times the tail's sensitivity 2.66 to t, Horner 3.34u, exp(-x^2/2) 5u,
      // two products: 15.8u on Phi(-|x|); 1 - tail one u more; the product by x one u
      case GELU -> (TAIL_FIT + 18 * U) * r + TINY * (Math.abs(x) + 1);
      // the tanh argument t carries 5u, so e^-2t carries 10u|t| + 3u; add, division, product
      case GELU_TANH -> (10 * Math.abs(tanhArgument(x)) + 6) * U * r + TINY * Math.abs(x);
    };
  }

  /** The backward bounds, per unit |dy|, absolute. */
  private static double backwardBound(Activation f, double x) {
    if (Double.isInfinite(x)) {
      // Every derivative there is a constant (0, 1 or a slope; for GELU its limit): one product.
      return U * Math.abs(ActivationReference.derivative(f, x));
    }
    double d = Math.abs(ActivationReference.derivative(f, x));
    return switch (f.function()) {
      case RELU -> 0;
      case LEAKY_RELU -> U * d;
      case ELU -> 5 * U * d + TINY * Math.abs(f.alpha()); // expUpTo88 3u, alpha, dy; e^x may flush to 0
      case SELU -> 6 * U * d + 2 * TINY; // lambda*alpha (< 2), expUpTo88 3u, two products
      case SIGMOID -> 16 * U * d + TINY; // e 3u, s 5u twice, two products, dy
      case TANH -> 16 * U * d + 4 * TINY; // 4 sigmoid'(2|x|), the doubling and the 4 exact
      case SOFTPLUS -> 6 * U * d + TINY; // sigmoid 5u, dy
      case GELU -> {
        // Phi(x) + x phi(x) with both terms bounded separately (no cancellation control): Phi 16.8u
        // as in the forward, x phi(x) 7u (exp(-x^2/2) 5u, the product, 1/sqrt(2 pi) rounded); the
        // FMA that adds them and the product by dy one u each.
        double phi = Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
        yield (TAIL_FIT + 19 * U) * (ActivationReference.normalCdf(x) + Math.abs(x) * phi) + TINY * (Math.abs(x) + 1);
      }
      case GELU_TANH -> {
        double t = tanhArgument(x);
        double s = 1 / (1 + Math.exp(-2 * t));
        double second = Math.abs(x) * K * (1 + 3 * 0.044715 * x * x) / (2 * Math.cosh(t) * Math.cosh(t));
        // e^-|2t| flushes to 0 below 2^-126 and is then multiplied by x * 2t' (s^2 <= 1).
        double flush = TINY * (1 + Math.abs(x) * 2 * K * (1 + 3 * 0.044715 * Math.min(x * x, 900)));
        yield (10 * Math.abs(t) + 23) * U * (s + (Double.isNaN(second) ? 0 : second)) + flush;
      }
      case STEP -> throw new AssertionError();
    };
  }

  private static double tanhArgument(double x) {
    return K * (x + (double) 0.044715f * x * x * x);
  }

  private static void expectClose(String what, Case c, int i, float x, float got, double want, double bound) {
    if (Double.isNaN(want) || Double.isInfinite(want)) {
      if (!(Double.isNaN(want) ? Float.isNaN(got) : got == want)) {
        throw new AssertionError(what + " " + c.f() + "(" + x + ") = " + got + " but reference " + want + " in " + c);
      }
      return;
    }
    double error = Math.abs(got - want);
    if (!(error <= bound)) {
      throw new AssertionError(what + " " + c.f() + "(" + x + ") = " + got + " but reference " + want + ": error "
          + error + " > bound " + bound + " in " + c);
    }
  }

  // ---- In place, offsets, PReLU ----

  /**
   * Threads cut the range into runs of whole vectors; every element is computed as it would be
   * alone, so 1, 2 and 3 threads give the same bits. Lengths reach past the 2^16 floats per thread
   * below which a call stays on one thread, and are odd so the last run has a tail.
   */
  @Test
  void threadCountDoesNotChangeTheBits() {
    Gen<Activation> functions = SourceDSL.integers().between(0, ALL.size() - 1).map(ALL::get);
    Properties.qt(12).forAll(functions, SourceDSL.integers().between(0, 300_000), SourceDSL.longs().all())
        .checkAssert((f, n, seed) -> {
          Case c = new Case(f, n, 8, true, seed);
          float[] x = c.x();
          float[] dy = c.dy();
          float[] oneY = new float[n];
          float[] oneDx = new float[n];
          f.forward(n, x, 0, oneY, 0, Parallelism.threads(1));
          if (f.function() != Activation.Function.STEP) {
            f.backward(n, x, 0, dy, 0, oneDx, 0, Parallelism.threads(1));
          }
          for (int threads = 2; threads <= 3; threads++) {
            float[] y = new float[n];
            float[] dx = new float[n];
            f.forward(n, x, 0, y, 0, Parallelism.threads(threads));
            assertArrayEquals(oneY, y, f + " forward, n = " + n + ", threads = " + threads);
            if (f.function() != Activation.Function.STEP) {
              f.backward(n, x, 0, dy, 0, dx, 0, Parallelism.threads(threads));
              assertArrayEquals(oneDx, dx, f + " backward, n = " + n + ", threads = " + threads);
            }
          }
        });
  }

  /**
   * The loops take plain native memory only; arrays and heap segments pass through a per-thread
   * native stage a chunk (4096 floats) at a time. Both routes run the same loops on the same
   * floats, so they must agree bit for bit: lengths cross chunk boundaries and end in tails,
   * native operands sit at a random float offset, and the native backward also runs in place.
   */
  @Test
  void heapAndNativeMemoryGiveTheSameBits() {
    Gen<Activation> functions = SourceDSL.integers().between(0, ALL.size() - 1).map(ALL::get);
    Properties.qt(60).forAll(functions, SourceDSL.integers().between(0, 13_000), SourceDSL.integers().between(0, 9),
        SourceDSL.longs().all()).checkAssert((f, n, offset, seed) -> {
          Case c = new Case(f, n, 8, true, seed);
          float[] x = c.x();
          float[] y = new float[n];
          f.forward(n, x, 0, y, 0, Parallelism.threads(1));
          try (Arena arena = Arena.ofConfined()) {
            MemorySegment xs = arena.allocate(4L * (n + offset), 64);
            MemorySegment.copy(x, 0, xs, JAVA_FLOAT, 4L * offset, n);
            MemorySegment ys = arena.allocate(4L * (n + offset), 64);
            f.forward(n, xs, offset, ys, offset, Parallelism.threads(1));
            assertArrayEquals(y, ys.asSlice(4L * offset).toArray(JAVA_FLOAT), f + " forward, n = " + n);
            if (f.function() != Activation.Function.STEP) {
              float[] dy = c.dy();
              float[] dx = new float[n];
              f.backward(n, x, 0, dy, 0, dx, 0, Parallelism.threads(1));
              MemorySegment dys = arena.allocate(4L * (n + offset), 64);
              MemorySegment.copy(dy, 0, dys, JAVA_FLOAT, 4L * offset, n);
              f.backward(n, xs, offset, dys, offset, dys, offset, Parallelism.threads(1));
              assertArrayEquals(dx, dys.asSlice(4L * offset).toArray(JAVA_FLOAT), f + " backward in place, n = " + n);
            }
          }
        });
  }

  @Test
  void inPlaceAndOffsetCallsGiveTheSameBits() {
    Properties.qt(100).forAll(Case.cases()).checkAssert(c -> {
      float[] x = c.x();
      float[] y = new float[c.n()];
      c.f().forward(c.n(), x, 0, y, 0);
      float[] shifted = new float[c.n() + 5];
      System.arraycopy(x, 0, shifted, 3, c.n());
      c.f().forward(c.n(), shifted, 3, shifted, 3);
      assertArrayEquals(y, java.util.Arrays.copyOfRange(shifted, 3, 3 + c.n()), "in place at offset 3: " + c);
      if (c.f().function() != Activation.Function.STEP) {
        float[] dy = c.dy();
        float[] dx = new float[c.n()];
        c.f().backward(c.n(), x, 0, dy, 0, dx, 0);
        c.f().backward(c.n(), x, 0, dy, 0, dy, 0);
        assertArrayEquals(dx, dy, "dx written over dy: " + c);
      }
    });
  }

  @Test
  void preluMatchesTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom random = new SplittableRandom(seed);
      int batch = random.nextInt(4);
      int channels = 1 + random.nextInt(40);
      int spatial = random.nextBoolean() ? 1 : 1 + random.nextInt(70);
      int slopes = random.nextBoolean() ? 1 : channels;
      int count = batch * channels * spatial;
      float[] x = new float[count];
      float[] dy = new float[count];
      float[] a = new float[slopes];
      for (int i = 0; i < count; i++) {
        x[i] = (float) (random.nextDouble() * 8 - 4);
        dy[i] = (float) (random.nextDouble() * 2 - 1);
      }
      for (int c = 0; c < slopes; c++) {
        a[c] = (float) (random.nextDouble() - 0.5);
      }
      var xs = java.lang.foreign.MemorySegment.ofArray(x);
      var as = java.lang.foreign.MemorySegment.ofArray(a);
      float[] y = new float[count];
      Activation.prelu(batch, channels, spatial, xs, 0, as, 0, slopes, java.lang.foreign.MemorySegment.ofArray(y), 0);
      float[] dx = new float[count];
      float[] da = new float[slopes];
      Activation.preluBackward(batch, channels, spatial, xs, 0, as, 0, slopes, java.lang.foreign.MemorySegment.ofArray(dy),
          0, java.lang.foreign.MemorySegment.ofArray(dx), 0, java.lang.foreign.MemorySegment.ofArray(da), 0);
      double[] refY = ActivationReference.prelu(batch, channels, spatial, Doubles.of(x), Doubles.of(a));
      double[][] ref = ActivationReference.preluBackward(batch, channels, spatial, Doubles.of(x), Doubles.of(a),
          Doubles.of(dy));
      for (int i = 0; i < count; i++) {
        // One product each: u relative.
        assertTrue(Math.abs(y[i] - refY[i]) <= U * Math.abs(refY[i]), "prelu y[" + i + "]");
        assertTrue(Math.abs(dx[i] - ref[0][i]) <= U * Math.abs(ref[0][i]), "prelu dx[" + i + "]");
      }
      // da is a float sum of up to N*S (times C when shared) products: gamma_(terms+1) on sum |x dy|.
      double[] magnitude = new double[slopes];
      for (int i = 0; i < count; i++) {
        magnitude[slopes == 1 ? 0 : i / spatial % channels] += x[i] > 0 ? 0 : Math.abs((double) x[i] * dy[i]);
      }
      int terms = batch * spatial * (slopes == 1 ? channels : 1);
      for (int c = 0; c < slopes; c++) {
        double bound = (terms + 1) * U * magnitude[c];
        assertTrue(Math.abs(da[c] - ref[1][c]) <= bound, "prelu da[" + c + "] = " + da[c] + " vs " + ref[1][c]
            + ", bound " + bound);
      }
    });
  }
}
