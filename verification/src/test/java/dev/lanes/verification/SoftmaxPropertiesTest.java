package dev.lanes.verification;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Softmax;
import dev.lanes.kernels.reference.SoftmaxReference;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * Softmax and log-softmax: the references' backward against central differences of their forward,
 * and the kernels against the references within the bounds derived in {@link Softmax}'s Javadoc
 * (forward) and below (backward), on random shapes, magnitudes up to 1e30 and -inf entries.
 */
class SoftmaxPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);

  /** A random softmax input: shape, magnitude, share of -inf entries and a content seed. */
  record Case(int rows, int cols, double scale, boolean withMinusInf, long seed) {
    static Gen<Case> cases() {
      Gen<Double> scales = SourceDSL.integers().between(0, 3).map(i -> new double[] {1, 10, 1e4, 1e30}[i]);
      return SourceDSL.integers().between(0, 6).zip(SourceDSL.integers().between(0, 200), scales,
          SourceDSL.booleans().all(), SourceDSL.longs().all(), Case::new);
    }

    float[] logits() {
      SplittableRandom random = new SplittableRandom(seed);
      float[] x = new float[rows * cols];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) ((random.nextDouble() * 2 - 1) * scale);
        if (withMinusInf && random.nextInt(25) == 0) {
          x[i] = Float.NEGATIVE_INFINITY;
        }
      }
      return x;
    }

    float[] upstream() {
      SplittableRandom random = new SplittableRandom(~seed);
      float[] dy = new float[rows * cols];
      for (int i = 0; i < dy.length; i++) {
        dy[i] = (float) (random.nextDouble() * 2 - 1);
      }
      return dy;
    }
  }

  // ---- The references' backward against numerical differentiation, in double ----

  @Test
  void referenceBackwardMatchesCentralDifferences() {
    Gen<Integer> rows = SourceDSL.integers().between(1, 3);
    Gen<Integer> cols = SourceDSL.integers().between(1, 12);
    Properties.qt(100).forAll(rows, cols, SourceDSL.longs().all()).checkAssert((r, c, seed) -> {
      SplittableRandom random = new SplittableRandom(seed);
      double[] x = new double[r * c];
      double[] w = new double[r * c];
      for (int i = 0; i < x.length; i++) {
        x[i] = random.nextDouble() * 8 - 4;
        w[i] = random.nextDouble() * 2 - 1;
      }
      // L(x) = sum_i w_i f(x)_i, so dL/dx is backward(f(x), w).
      double[] y = SoftmaxReference.forward(r, c, x);
      assertGradient(x, w, SoftmaxReference.backward(r, c, y, w), xs -> SoftmaxReference.forward(r, c, xs));
      double[] z = SoftmaxReference.logForward(r, c, x);
      assertGradient(x, w, SoftmaxReference.logBackward(r, c, z, w), xs -> SoftmaxReference.logForward(r, c, xs));
    });
  }

  /**
   * Central differences with eps = 1e-6, and relative error under 1e-6 on top of the error the
   * difference quotient itself carries, derived per case rather than set as a floor:
   * <ul>
   *   <li>roundoff: each f_i(x) is computed with about n + 4 double roundings (the row's exps and
   *       sum, a log or a division, a subtraction), so L = sum w_i f_i is off by up to
   *       {@code (n + 4) u_d sum |w_i f_i|}, {@code u_d = 2^-53}; the quotient divides the
   *       difference of two such values by {@code 2 eps}, hence {@code (n + 4) u_d sum |w_i f_i| / eps};
   *   <li>truncation: {@code eps^2 |f'''| / 6}, with the third derivatives of these functions of
   *       order |w|, bounded by {@code 1e-12 sum |w_i|}.
   * </ul>
   */
  private static void assertGradient(double[] x, double[] w, double[] analytic,
      java.util.function.Function<double[], double[]> f) {
    double eps = 1e-6;
    double[] at = f.apply(x);
    double magnitude = 0;
    double weights = 0;
    for (int i = 0; i < x.length; i++) {
      magnitude += Math.abs(w[i] * at[i]);
      weights += Math.abs(w[i]);
    }
    int n = x.length;
    double quotientError = (n + 4) * Math.ulp(1.0) / 2 * magnitude / eps + 1e-12 * weights;
    for (int k = 0; k < x.length; k++) {
      double[] plus = x.clone();
      double[] minus = x.clone();
      plus[k] += eps;
      minus[k] -= eps;
      double numeric = (dot(w, f.apply(plus)) - dot(w, f.apply(minus))) / (2 * eps);
      double allowed = 1e-6 * Math.abs(analytic[k]) + quotientError;
      if (!(Math.abs(numeric - analytic[k]) <= allowed)) {
        throw new AssertionError("d/dx[" + k + "]: numeric " + numeric + " vs backward " + analytic[k]
            + ", allowed " + allowed);
      }
    }
  }

  private static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  // ---- Threads ----

  /**
   * Threads take runs of whole rows, each row computed as it would be alone, and the loss adds the
   * rows' losses in row order on the calling thread: 1, 2 and 3 threads give the same bits. The
   * shapes reach past the 2^15 floats per thread below which a call stays on one thread.
   */
  @Test
  void threadCountDoesNotChangeTheBits() {
    Properties.qt(12).forAll(SourceDSL.integers().between(1, 160), SourceDSL.integers().between(1, 1200),
        SourceDSL.longs().all()).checkAssert((rows, cols, seed) -> {
          Inputs in = Inputs.random(new SplittableRandom(seed), rows, cols, 8);
          float[] x = in.x();
          float[] dy = in.dy();
          int[] labels = in.labels();
          float[][] one = Outputs.compute(rows, cols, x, dy, labels, 1);
          for (int threads = 2; threads <= 3; threads++) {
            float[][] many = Outputs.compute(rows, cols, x, dy, labels, threads);
            for (int k = 0; k < one.length; k++) {
              assertArrayEquals(one[k], many[k],
                  Outputs.NAMES[k] + ", " + rows + "x" + cols + ", threads = " + threads);
            }
          }
        });
  }

  /**
   * Heap segments (and float[] arrays) and native memory at any offset, also mixed in one call,
   * run the same row loops on the same floats, so they must agree bit for bit; native operands
   * sit at a random float offset.
   */
  @Test
  void heapAndNativeSegmentsGiveTheSameBits() {
    Properties.qt(40).forAll(SourceDSL.integers().between(1, 40), SourceDSL.integers().between(1, 300),
        SourceDSL.integers().between(0, 9), SourceDSL.longs().all()).checkAssert((rows, cols, offset, seed) -> {
          SplittableRandom random = new SplittableRandom(seed);
          int n = rows * cols;
          float[] x = new float[n];
          float[] dy = new float[n];
          float[] targets = new float[n];
          for (int i = 0; i < n; i++) {
            x[i] = (float) (random.nextGaussian() * 6);
            dy[i] = (float) random.nextGaussian();
            targets[i] = (float) random.nextDouble();
          }
          int[] labels = new int[rows];
          for (int r = 0; r < rows; r++) {
            labels[r] = random.nextInt(8) == 0 ? -100 : random.nextInt(cols);
          }
          float[][] heap = Outputs.compute(rows, cols, x, dy, labels, 1);
          float[][] offHeap = Outputs.computeNative(rows, cols, x, dy, labels, offset);
          for (int k = 0; k < heap.length; k++) {
            assertArrayEquals(heap[k], offHeap[k], Outputs.NAMES[k] + ", " + rows + "x" + cols + ", offset " + offset);
          }
          try (Arena arena = Arena.ofConfined()) {
            // Mixed: a heap input into a native output, and a native input into a heap output.
            MemorySegment ys = arena.allocate(4L * (n + offset), 64);
            Softmax.forward(rows, cols, MemorySegment.ofArray(x), 0, ys, offset);
            assertArrayEquals(heap[0], ys.asSlice(4L * offset).toArray(JAVA_FLOAT), "forward, heap x, native y");
            float[] y = new float[n];
            Softmax.forward(rows, cols, Outputs.nativeCopy(arena, x, offset), offset, MemorySegment.ofArray(y), 0);
            assertArrayEquals(heap[0], y, "forward, native x, heap y");
          }
          float[] heapD = new float[n];
          float heapLoss = Softmax.crossEntropyProbabilities(rows, cols, MemorySegment.ofArray(x), 0,
              MemorySegment.ofArray(targets), 0, MemorySegment.ofArray(heapD), 0);
          try (Arena arena = Arena.ofConfined()) {
            MemorySegment xs = Outputs.nativeCopy(arena, x, offset);
            MemorySegment ts = Outputs.nativeCopy(arena, targets, offset);
            MemorySegment ds = arena.allocate(4L * (n + offset), 64);
            float loss = Softmax.crossEntropyProbabilities(rows, cols, xs, offset, ts, offset, ds, offset);
            assertEquals(Float.floatToRawIntBits(heapLoss), Float.floatToRawIntBits(loss), "probability loss");
            assertArrayEquals(heapD, ds.asSlice(4L * offset).toArray(JAVA_FLOAT), "probability dlogits");
          }
        });
  }

  /**
   * Rows of 8192 floats and more run a loop of their own on native memory: each row's maximum is
   * taken in the exponential pass of the row before. Heap segments go one row at a time through a
   * native stage, without it. So native and heap must agree bit for bit, on any thread count, with
   * rows holding -inf, +inf or NaN, rows that are all -inf, and ignored labels among them.
   */
  @Test
  void longRowsGiveTheBitsOfOneRowAtATime() {
    Properties.qt(10).forAll(SourceDSL.integers().between(1, 9), SourceDSL.integers().between(8192, 8300),
        SourceDSL.integers().between(0, 9), SourceDSL.longs().all()).checkAssert((rows, cols, offset, seed) -> {
          SplittableRandom random = new SplittableRandom(seed);
          Inputs in = Inputs.random(random, rows, cols, 4);
          float[] x = in.x();
          float[] dy = in.dy();
          int[] labels = in.labels();
          for (int r = 0; r < rows; r++) {
            int at = r * cols + random.nextInt(cols);
            switch (random.nextInt(6)) {
              case 0 -> x[at] = Float.NEGATIVE_INFINITY;
              case 1 -> x[at] = Float.POSITIVE_INFINITY;
              case 2 -> x[at] = Float.NaN;
              case 3 -> java.util.Arrays.fill(x, r * cols, (r + 1) * cols, Float.NEGATIVE_INFINITY);
              default -> { }
            }
          }
          float[][] heap = Outputs.compute(rows, cols, x, dy, labels, 1);
          for (int threads = 1; threads <= 3; threads++) {
            float[][] offHeap = Outputs.computeNative(rows, cols, x, dy, labels, offset, threads);
            for (int k = 0; k < heap.length; k++) {
              assertArrayEquals(heap[k], offHeap[k],
                  Outputs.NAMES[k] + ", " + rows + "x" + cols + ", offset " + offset + ", threads " + threads);
            }
          }
        });
  }

  /** Logits N(0, 6^2), upstream gradients N(0, 1), and labels of which one in {@code ignoreOneIn} is ignored (-100). */
  private record Inputs(float[] x, float[] dy, int[] labels) {
    static Inputs random(SplittableRandom random, int rows, int cols, int ignoreOneIn) {
      int n = rows * cols;
      float[] x = new float[n];
      float[] dy = new float[n];
      for (int i = 0; i < n; i++) {
        x[i] = (float) (random.nextGaussian() * 6);
        dy[i] = (float) random.nextGaussian();
      }
      int[] labels = new int[rows];
      for (int r = 0; r < rows; r++) {
        labels[r] = random.nextInt(ignoreOneIn) == 0 ? -100 : random.nextInt(cols);
      }
      return new Inputs(x, dy, labels);
    }
  }

  /** Every softmax output of one input, on a given number of threads. */
  private static final class Outputs {
    static final String[] NAMES = {"forward", "logForward", "backward", "logBackward", "crossEntropy dlogits",
        "crossEntropy loss"};

    static float[][] compute(int rows, int cols, float[] x, float[] dy, int[] labels, int threads) {
      Parallelism p = Parallelism.threads(threads);
      MemorySegment xs = MemorySegment.ofArray(x);
      MemorySegment dys = MemorySegment.ofArray(dy);
      int n = rows * cols;
      float[] y = new float[n];
      float[] z = new float[n];
      float[] dx = new float[n];
      float[] dz = new float[n];
      float[] dlogits = new float[n];
      MemorySegment ys = MemorySegment.ofArray(y);
      MemorySegment zs = MemorySegment.ofArray(z);
      Softmax.forward(rows, cols, xs, 0, ys, 0, p);
      Softmax.logForward(rows, cols, xs, 0, zs, 0, p);
      Softmax.backward(rows, cols, ys, 0, dys, 0, MemorySegment.ofArray(dx), 0, p);
      Softmax.logBackward(rows, cols, zs, 0, dys, 0, MemorySegment.ofArray(dz), 0, p);
      float loss = Softmax.crossEntropy(rows, cols, xs, 0, MemorySegment.ofArray(labels), 0, -100,
          MemorySegment.ofArray(dlogits), 0, p);
      return new float[][] {y, z, dx, dz, dlogits, {loss}};
    }

    /** {@link #compute} on one thread with every operand in native memory, {@code offset} floats in. */
    static float[][] computeNative(int rows, int cols, float[] x, float[] dy, int[] labels, int offset) {
      return computeNative(rows, cols, x, dy, labels, offset, 1);
    }

    /** {@link #computeNative(int, int, float[], float[], int[], int)} on {@code threads} threads. */
    static float[][] computeNative(int rows, int cols, float[] x, float[] dy, int[] labels, int offset, int threads) {
      Parallelism p = Parallelism.threads(threads);
      int n = rows * cols;
      try (Arena arena = Arena.ofConfined()) {
        MemorySegment xs = nativeCopy(arena, x, offset);
        MemorySegment dys = nativeCopy(arena, dy, offset);
        MemorySegment[] outs = new MemorySegment[5];
        for (int k = 0; k < outs.length; k++) {
          outs[k] = arena.allocate(4L * (n + offset), 64);
        }
        MemorySegment ls = arena.allocate(4L * (rows + offset), 64);
        MemorySegment.copy(labels, 0, ls, JAVA_INT, 4L * offset, rows);
        Softmax.forward(rows, cols, xs, offset, outs[0], offset, p);
        Softmax.logForward(rows, cols, xs, offset, outs[1], offset, p);
        Softmax.backward(rows, cols, outs[0], offset, dys, offset, outs[2], offset, p);
        Softmax.logBackward(rows, cols, outs[1], offset, dys, offset, outs[3], offset, p);
        float loss = Softmax.crossEntropy(rows, cols, xs, offset, ls, offset, -100, outs[4], offset, p);
        float[][] result = new float[6][];
        for (int k = 0; k < outs.length; k++) {
          result[k] = outs[k].asSlice(4L * offset).toArray(JAVA_FLOAT);
        }
        result[5] = new float[] {loss};
        return result;
      }
    }

    static MemorySegment nativeCopy(Arena arena, float[] values, int offset) {
      MemorySegment s = arena.allocate(4L * (values.length + offset), 64);
      MemorySegment.copy(values, 0, s, JAVA_FLOAT, 4L * offset, values.length);
      return s;
    }
  }

  // ---- The kernels against the references ----

  @Test
  void forwardAndBackwardMatchTheReference() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(300).forAll(Case.cases()).checkAssert(c -> {
      cases.incrementAndGet();
      checkSoftmax(c);
      checkLogSoftmax(c);
    });
    assertTrue(cases.get() >= 300, "only " + cases.get() + " cases ran");
  }

  private static void checkSoftmax(Case c) {
    int n = c.cols();
    float[] x = c.logits();
    float[] y = new float[x.length];
    Softmax.forward(c.rows(), n, x, 0, y, 0);
    double[] xd = toDouble(x);
    double[] ref = SoftmaxReference.forward(c.rows(), n, xd);
    for (int r = 0; r < c.rows(); r++) {
      double m = rowMax(xd, r * n, n);
      for (int i = r * n; i < (r + 1) * n; i++) {
        // Past |x - m| = 104 the float exp is exactly 0 and only the absolute floor matters.
        double bound = U * (Math.min(Math.abs(xd[i] - m), 104) + 3 * n + 6) * ref[i] + Math.scalb(1.0, -126);
        expectClose("softmax", c, i, y[i], ref[i], bound);
      }
    }
    // Backward from the kernel's own y, so both sides differentiate the same point.
    float[] dy = c.upstream();
    float[] dx = new float[x.length];
    Softmax.backward(c.rows(), n, y, 0, dy, 0, dx, 0);
    double[] yd = toDouble(y);
    double[] dyd = toDouble(dy);
    double[] refDx = SoftmaxReference.backward(c.rows(), n, yd, dyd);
    for (int r = 0; r < c.rows(); r++) {
      double s1 = 0;
      for (int j = r * n; j < (r + 1) * n; j++) {
        s1 += Math.abs(dyd[j]) * yd[j];
      }
      for (int i = r * n; i < (r + 1) * n; i++) {
        // First order: dot (n u S1), subtraction (u(|dy_i| + S1)), product (u y_i |G|); a product
        // that lands among the subnormals is rounded to within 2^-150 absolute instead.
        double bound = U * yd[i] * (2 * Math.abs(dyd[i]) + (n + 2) * s1) * (1 + n * U) + Math.scalb(1.0, -150);
        expectClose("softmax backward", c, i, dx[i], refDx[i], bound);
      }
    }
  }

  private static void checkLogSoftmax(Case c) {
    int n = c.cols();
    float[] x = c.logits();
    float[] z = new float[x.length];
    Softmax.logForward(c.rows(), n, x, 0, z, 0);
    double[] xd = toDouble(x);
    double[] ref = SoftmaxReference.logForward(c.rows(), n, xd);
    for (int r = 0; r < c.rows(); r++) {
      double m = rowMax(xd, r * n, n);
      double sum = 0;
      for (int j = r * n; j < (r + 1) * n; j++) {
        sum += Math.exp(xd[j] - m);
      }
      for (int i = r * n; i < (r + 1) * n; i++) {
        double bound = U * (Math.abs(xd[i] - m) + 3 * n + 2 * Math.abs(Math.log(sum)) + Math.abs(ref[i]) + 6);
        expectClose("log-softmax", c, i, z[i], ref[i], bound);
      }
    }
    float[] dy = c.upstream();
    float[] dx = new float[x.length];
    Softmax.logBackward(c.rows(), n, z, 0, dy, 0, dx, 0);
    double[] zd = toDouble(z);
    double[] dyd = toDouble(dy);
    double[] refDx = SoftmaxReference.logBackward(c.rows(), n, zd, dyd);
    for (int r = 0; r < c.rows(); r++) {
      double a = 0;
      for (int j = r * n; j < (r + 1) * n; j++) {
        a += Math.abs(dyd[j]);
      }
      for (int i = r * n; i < (r + 1) * n; i++) {
        // First order: sum (n u A), exp (3u), one fused multiply-add (u |dx_i|); plus 2^-150 for a
        // result among the subnormals, and 2^-126 A for an exp that flushes to 0.
        double bound = U * (Math.abs(dyd[i]) + Math.exp(zd[i]) * a * (n + 4)) * (1 + n * U)
            + Math.scalb(1.0, -150) + Math.scalb(1.0, -126) * a;
        expectClose("log-softmax backward", c, i, dx[i], refDx[i], bound);
      }
    }
  }

  /** Equal special values (NaN, infinities) or a finite error within the bound. */
  private static void expectClose(String what, Case c, int i, float got, double want, double bound) {
    if (Double.isNaN(want) || Double.isInfinite(want)) {
      if (!(Double.isNaN(want) ? Float.isNaN(got) : got == want)) {
        throw new AssertionError(what + "[" + i + "] = " + got + " but reference " + want + " in " + c);
      }
      return;
    }
    double error = Math.abs(got - want);
    if (!(error <= bound)) {
      throw new AssertionError(what + "[" + i + "] = " + got + " but reference " + want + ": error " + error
          + " > bound " + bound + " in " + c);
    }
  }

  private static double rowMax(double[] x, int from, int n) {
    double m = Double.NEGATIVE_INFINITY;
    for (int i = from; i < from + n; i++) {
      m = Math.max(m, x[i]);
    }
    return m;
  }

  private static double[] toDouble(float[] x) {
    double[] d = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      d[i] = x[i];
    }
    return d;
  }

  // ---- PyTorch's special-value behaviour, exactly ----

  @Test
  void specialRowsBehaveAsInPyTorch() {
    float ninf = Float.NEGATIVE_INFINITY;
    float[] x = {
        ninf, ninf, ninf, // all -inf: NaN
        1f, ninf, 1f,     // one -inf: probability 0, log-probability -inf
        1e30f, -1e30f, 0f // huge logits: no overflow
    };
    float[] y = new float[9];
    float[] z = new float[9];
    Softmax.forward(3, 3, x, 0, y, 0);
    Softmax.logForward(3, 3, x, 0, z, 0);
    for (int i = 0; i < 3; i++) {
      assertTrue(Float.isNaN(y[i]) && Float.isNaN(z[i]), "all -inf row gives NaN");
    }
    assertEquals(0.5f, y[3]);
    assertEquals(0f, y[4]);
    assertEquals(0.5f, y[5]);
    assertEquals(ninf, z[4]);
    assertEquals(1f, y[6]);
    assertEquals(0f, y[7]);
    assertEquals(0f, y[8]);
    assertEquals(0f, z[6]);
    assertEquals(-1e30f, z[8]);
  }

  /**
   * Rows whose maximum is not finite come out NaN in every entry, in the forward, the
   * log-softmax, the loss and its gradient: one +inf, one NaN, one NaN with its sign bit set (the
   * exponential's clamp would take such an argument to 0), all of them sign-set NaNs, and all -inf.
   * 37 columns, so each row has whole vectors and a staged tail at every vector width.
   */
  @Test
  void rowsWithANonFiniteMaximumAreNaN() {
    int cols = 37;
    float signedNaN = Float.intBitsToFloat(0xFFC00000);
    float[][] specials = {
        {Float.POSITIVE_INFINITY}, {Float.NaN}, {signedNaN}, null, {Float.NEGATIVE_INFINITY}};
    for (int kind = 0; kind < specials.length; kind++) {
      float[] x = new float[cols];
      for (int i = 0; i < cols; i++) {
        x[i] = kind == 3 ? signedNaN : kind == 4 ? Float.NEGATIVE_INFINITY : (float) Math.sin(i);
      }
      if (specials[kind] != null) {
        x[11] = specials[kind][0];
      }
      float[] y = new float[cols];
      float[] z = new float[cols];
      float[] d = new float[cols];
      Softmax.forward(1, cols, x, 0, y, 0);
      Softmax.logForward(1, cols, x, 0, z, 0);
      float loss = Softmax.crossEntropy(1, cols, x, 0, new int[] {3}, 0, -100, d, 0);
      assertTrue(Float.isNaN(loss), "loss, row kind " + kind);
      for (int i = 0; i < cols; i++) {
        assertTrue(Float.isNaN(y[i]) && Float.isNaN(z[i]) && Float.isNaN(d[i]),
            "row kind " + kind + ", column " + i + ": " + y[i] + " " + z[i] + " " + d[i]);
      }
    }
  }
}
