package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Conv1d;
import dev.lanes.kernels.Conv2d;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.ConvReference;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.EnumSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Conv2d (and Conv1d) against the double reference, the reference's backward against central
 * differences, the adjoint identities, and bitwise agreement across thread counts.
 *
 * <p>Bounds, per element, with {@code u = 2^-24} and |.| the same pass run by the reference on
 * absolute values (so cancellation cannot hide error):
 * <ul>
 *   <li>forward: {@code 4 (L + 1) u |y|}, L = (C/groups)*R*S. The GEMM's bound (see
 *       GemmPropertiesTest: L FMA roundings plus a few for alpha, beta and the KC chunks, under
 *       4L) with one more term for the bias that the output starts from;
 *   <li>backward data by col2im: {@code 4 (K/groups + R*S) u |dx|}: every column entry is a GEMM
 *       dot of length K/groups, and col2im adds up to R*S of them;
 *   <li>backward data as a forward convolution (stride 1, at least 4 channels per group, padding
 *       within {@code dilation*(R-1)}, not a direct 1x1: Conv2d's documented rule): one GEMM dot of
 *       {@code (K/groups)*R*S} terms, {@code 4 (K/groups) R S u |dx|};
 *   <li>backward weights and bias: {@code 4 N Hout Wout u |dw|}: sums of N*Hout*Wout products,
 *       taken as GEMM calls over chunks that each round like a GEMM and then add on.
 * </ul>
 */
class ConvPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);

  /** Shape features the random cases must have covered by the end of a run. */
  enum Feature { BATCH_1, ODD_SIZE, STRIDE_OVER_KERNEL, PADDING, DILATION_2, GROUPS, DEPTHWISE, BIAS,
    DATA_AS_FORWARD, DATA_BY_COL2IM, SHIFTED_ROWS, SHIFTED_ROWS_COL2IM }

  /** The rounding count of a data-gradient element, by path (see the class comment). */
  static int dataTerms(Conv2d g) {
    int taps = g.kernelH() * g.kernelW();
    int filters = g.filters() / g.groups();
    return dataAsForward(g) ? filters * taps : filters + taps;
  }

  /** Conv2d's documented rule for computing the data gradient as a forward convolution. */
  static boolean dataAsForward(Conv2d g) {
    return g.strideH() == 1 && g.strideW() == 1 && !direct(g) && g.channels() / g.groups() >= 4
        && g.padH() <= g.dilationH() * (g.kernelH() - 1) && g.padW() <= g.dilationW() * (g.kernelW() - 1);
  }

  /**
   * A 1x1, unpadded kernel. At stride 1, which both callers require too, Conv2d runs it as a plain
   * GEMM on the input, with no im2col.
   */
  static boolean direct(Conv2d g) {
    return g.kernelH() == 1 && g.kernelW() == 1 && g.padH() == 0 && g.padW() == 0;
  }

  static Set<Feature> features(ConvCase c) {
    Conv2d g = c.conv();
    Set<Feature> f = EnumSet.noneOf(Feature.class);
    if (g.batch() == 1) f.add(Feature.BATCH_1);
    if (g.height() % 2 == 1 && g.width() % 2 == 1) f.add(Feature.ODD_SIZE);
    if (g.strideH() > g.kernelH() || g.strideW() > g.kernelW()) f.add(Feature.STRIDE_OVER_KERNEL);
    if (g.padH() >= 1 || g.padW() >= 1) f.add(Feature.PADDING);
    if (g.dilationH() == 2 || g.dilationW() == 2) f.add(Feature.DILATION_2);
    if (g.groups() > 1 && g.groups() < g.channels()) f.add(Feature.GROUPS);
    if (g.groups() == g.channels() && g.channels() > 1) f.add(Feature.DEPTHWISE);
    if (c.withBias()) f.add(Feature.BIAS);
    f.add(dataAsForward(g) ? Feature.DATA_AS_FORWARD : Feature.DATA_BY_COL2IM);
    // im2col's shifted-row path (stride 1, output as wide as the input), for the forward and the
    // weight gradient, and for col2im when the data gradient does not run as a forward.
    if (g.strideH() == 1 && g.strideW() == 1 && g.outWidth() == g.width() && !direct(g)) {
      f.add(Feature.SHIFTED_ROWS);
      if (!dataAsForward(g)) f.add(Feature.SHIFTED_ROWS_COL2IM);
    }
    return f;
  }

  // ---- the reference's backward against numerical differentiation ----

  @Test
  void referenceBackwardMatchesCentralDifferences() {
    Properties.qt(60).forAll(ConvCase.cases(7, 1)).checkAssert(c -> {
      Conv2d g = c.conv();
      double[] x = Doubles.of(c.x());
      double[] w = Doubles.of(c.w());
      double[] b = Doubles.of(c.data(3, g.filters()));
      double[] dy = Doubles.of(c.dy());
      // L = <dy, conv(x, w) + b>. Each output sums at most L + 1 terms; the weighted magnitude
      // is <|dy|, conv(|x|, |w|) + |b|>.
      int terms = g.channels() / g.groups() * g.kernelH() * g.kernelW() + 1;
      double magnitude = Doubles.dot(abs(dy), ConvReference.forward(g, abs(x), abs(w), abs(b)));
      double error = NumericalGradient.roundoff(terms, magnitude);
      NumericalGradient.check("dx", x, dy, ConvReference.backwardData(g, dy, w),
          xs -> ConvReference.forward(g, xs, w, b), error, 24);
      NumericalGradient.check("dw", w, dy, ConvReference.backwardWeights(g, x, dy),
          ws -> ConvReference.forward(g, x, ws, b), error, 24);
      NumericalGradient.check("db", b, dy, ConvReference.backwardBias(g, dy),
          bs -> ConvReference.forward(g, x, w, bs), error, 24);
    });
  }

  // ---- the kernels against the reference ----

  @Test
  void everyPassMatchesTheReference() {
    AtomicInteger cases = new AtomicInteger();
    Set<Feature> seen = EnumSet.noneOf(Feature.class);
    Properties.qt(300).forAll(ConvCase.cases(11, 1)).checkAssert(c -> {
      boolean segments = cases.incrementAndGet() % 2 == 0;
      seen.addAll(features(c));
      checkAgainstReference(c, segments, segments ? Parallelism.threads(2) : Parallelism.sequential());
    });
    assertTrue(cases.get() >= 300, "only " + cases.get() + " cases ran");
    assertTrue(seen.containsAll(EnumSet.allOf(Feature.class)), "cases never covered " 
        + EnumSet.complementOf(EnumSet.copyOf(seen)));
  }

  static void checkAgainstReference(ConvCase c, boolean segments, Parallelism parallelism) {
    Conv2d g = c.conv();
    float[] x = c.x();
    float[] w = c.w();
    float[] b = c.bias();
    float[] dy = c.dy();
    Passes out = run(g, x, w, b, dy, segments, parallelism);
    int positions = g.outHeight() * g.outWidth();
    int taps = g.kernelH() * g.kernelW();
    double reduce = 4.0 * g.batch() * positions * U;

    double[] y = ConvReference.forward(g, Doubles.of(x), Doubles.of(w), Doubles.of(b));
    double[] yAbs = ConvReference.forward(g, Doubles.abs(x), Doubles.abs(w), Doubles.abs(b));
    assertClose("y", c, out.y, y, yAbs, 4.0 * (g.channels() / g.groups() * taps + 1) * U);

    double[] dx = ConvReference.backwardData(g, Doubles.of(dy), Doubles.of(w));
    double[] dxAbs = ConvReference.backwardData(g, Doubles.abs(dy), Doubles.abs(w));
    assertClose("dx", c, out.dx, dx, dxAbs, 4.0 * dataTerms(g) * U);

    double[] dw = ConvReference.backwardWeights(g, Doubles.of(x), Doubles.of(dy));
    double[] dwAbs = ConvReference.backwardWeights(g, Doubles.abs(x), Doubles.abs(dy));
    assertClose("dw", c, out.dw, dw, dwAbs, reduce);

    double[] db = ConvReference.backwardBias(g, Doubles.of(dy));
    double[] dbAbs = ConvReference.backwardBias(g, Doubles.abs(dy));
    assertClose("db", c, out.db, db, dbAbs, reduce);
  }

  static void assertClose(String name, Object c, float[] got, double[] ref, double[] refAbs, double relative) {
    for (int i = 0; i < ref.length; i++) {
      double allowed = relative * refAbs[i];
      if (!(Math.abs(got[i] - ref[i]) <= allowed)) {
        throw new AssertionError(name + "[" + i + "] = " + got[i] + ", reference " + ref[i] + ", allowed error "
            + allowed + " for " + c);
      }
    }
  }

  // ---- adjoint identities, on the float kernels ----

  @Test
  void dataAndWeightGradientsAreAdjointsOfTheForward() {
    Properties.qt(150).forAll(ConvCase.cases(11, 1)).checkAssert(c -> {
      Conv2d g = c.conv();
      float[] x = c.x();
      float[] w = c.w();
      float[] yDual = c.dy();
      Passes out = run(g, x, w, null, yDual, true, Parallelism.threads(2));
      double[] xd = Doubles.of(x);
      double[] wd = Doubles.of(w);
      double[] yd = Doubles.of(yDual);
      int taps = g.kernelH() * g.kernelW();
      // |<conv(x), y> - <x, convᵀ(y)>| is at most the float error of each side weighted by the
      // other operand, from the per-element bounds above (the double dots add ~n 2^-53, noise).
      double[] yAbs = ConvReference.forward(g, Doubles.abs(x), Doubles.abs(w), null);
      double[] dxAbs = ConvReference.backwardData(g, abs(yd), abs(wd));
      double[] dwAbs = ConvReference.backwardWeights(g, abs(xd), abs(yd));
      double forwardError = 4.0 * (g.channels() / g.groups() * taps + 1) * U * Doubles.absDot(yd, yAbs);
      double dataError = 4.0 * dataTerms(g) * U * Doubles.absDot(xd, dxAbs);
      double weightError = 4.0 * g.batch() * g.outHeight() * g.outWidth() * U * Doubles.absDot(wd, dwAbs);
      double lhs = Doubles.dot(Doubles.of(out.y), yd);
      assertAdjoint("<conv(x), y> vs <x, backwardData(y)>", c, lhs, Doubles.dot(xd, Doubles.of(out.dx)),
          forwardError + dataError);
      assertAdjoint("<conv_w(x), y> vs <w, backwardWeights(x, y)>", c, lhs, Doubles.dot(wd, Doubles.of(out.dw)),
          forwardError + weightError);
    });
  }

  static void assertAdjoint(String what, Object c, double lhs, double rhs, double allowed) {
    if (!(Math.abs(lhs - rhs) <= allowed)) {
      throw new AssertionError(what + ": " + lhs + " vs " + rhs + ", allowed " + allowed + " for " + c);
    }
  }

  // ---- threads ----

  @Test
  void everyPassIsBitwiseIdenticalForAnyThreadCount() {
    // Outputs of at least 900 pixels, so the calls are big enough to split.
    Properties.qt(25).forAll(ConvCase.cases(40, 900)).checkAssert(c -> {
      Conv2d g = c.conv();
      Passes one = run(g, c.x(), c.w(), c.bias(), c.dy(), true, Parallelism.sequential());
      for (int threads = 2; threads <= 3; threads++) {
        Passes many = run(g, c.x(), c.w(), c.bias(), c.dy(), true, Parallelism.threads(threads));
        assertArrayEquals(one.y, many.y, "y on " + threads + " threads, " + c);
        assertArrayEquals(one.dx, many.dx, "dx on " + threads + " threads, " + c);
        assertArrayEquals(one.dw, many.dw, "dw on " + threads + " threads, " + c);
        assertArrayEquals(one.db, many.db, "db on " + threads + " threads, " + c);
      }
    });
  }

  // ---- conv1d ----

  @Test
  void conv1dIsConv2dOverOneRow() {
    Properties.qt(100).forAll(ConvCase.cases(11, 1)).checkAssert(c -> {
      Conv2d g2 = c.conv();
      // The same case with the height folded away: [N, C, L] with L = W.
      Conv1d g = Conv1d.builder(g2.batch(), g2.channels(), g2.width()).filters(g2.filters())
          .kernel(g2.kernelW()).stride(g2.strideW()).padding(g2.padW()).dilation(g2.dilationW())
          .groups(g2.groups()).build();
      Conv2d as2d = Conv2d.builder(g2.batch(), g2.channels(), 1, g2.width()).filters(g2.filters())
          .kernel(1, g2.kernelW()).stride(1, g2.strideW()).padding(0, g2.padW()).dilation(1, g2.dilationW())
          .groups(g2.groups()).build();
      float[] x = c.data(1, g.inputFloats());
      float[] w = c.data(2, g.weightFloats());
      float[] b = c.bias();
      float[] dy = c.data(4, g.outputFloats());
      float[] y = new float[(int) g.outputFloats()];
      float[] dx = new float[(int) g.inputFloats()];
      float[] dw = new float[(int) g.weightFloats()];
      g.forward(x, 0, w, 0, b, 0, y, 0);
      g.backwardData(dy, 0, w, 0, dx, 0);
      g.backwardWeights(x, 0, dy, 0, dw, 0);
      int taps = g2.kernelW();
      assertClose("conv1d y", c, y, ConvReference.forward(as2d, Doubles.of(x), Doubles.of(w), Doubles.of(b)),
          ConvReference.forward(as2d, Doubles.abs(x), Doubles.abs(w), Doubles.abs(b)),
          4.0 * (g2.channels() / g2.groups() * taps + 1) * U);
      assertClose("conv1d dx", c, dx, ConvReference.backwardData(as2d, Doubles.of(dy), Doubles.of(w)),
          ConvReference.backwardData(as2d, Doubles.abs(dy), Doubles.abs(w)),
          4.0 * dataTerms(as2d) * U);
      assertClose("conv1d dw", c, dw, ConvReference.backwardWeights(as2d, Doubles.of(x), Doubles.of(dy)),
          ConvReference.backwardWeights(as2d, Doubles.abs(x), Doubles.abs(dy)),
          4.0 * g2.batch() * g.outLength() * U);
    });
  }

  // ---- helpers ----

  record Passes(float[] y, float[] dx, float[] dw, float[] db) {}

  /** Runs all four passes, on arrays or on shared off-heap segments. */
  static Passes run(Conv2d g, float[] x, float[] w, float[] b, float[] dy, boolean segments, Parallelism p) {
    float[] y = new float[(int) g.outputFloats()];
    float[] dx = new float[(int) g.inputFloats()];
    float[] dw = new float[(int) g.weightFloats()];
    float[] db = new float[g.filters()];
    if (!segments) {
      g.forward(x, 0, w, 0, b, 0, y, 0, p);
      g.backwardData(dy, 0, w, 0, dx, 0, p);
      g.backwardWeights(x, 0, dy, 0, dw, 0, p);
      g.backwardBias(dy, 0, db, 0);
      return new Passes(y, dx, dw, db);
    }
    try (Arena arena = Arena.ofShared()) {
      // Offsets of 3 floats, so nothing relies on the tensors starting at 0.
      MemorySegment xs = copy(arena, x, 3);
      MemorySegment ws = copy(arena, w, 3);
      MemorySegment bs = b == null ? null : copy(arena, b, 3);
      MemorySegment dys = copy(arena, dy, 3);
      MemorySegment ys = copy(arena, y, 3);
      MemorySegment dxs = copy(arena, dx, 3);
      MemorySegment dws = copy(arena, dw, 3);
      MemorySegment dbs = copy(arena, db, 3);
      MemorySegment work = arena.allocate(4 * Math.max(1, g.workspaceFloats(p.threads())));
      g.forward(xs, 3, ws, 3, bs, 3, ys, 3, work, p);
      g.backwardData(dys, 3, ws, 3, dxs, 3, work, p);
      g.backwardWeights(xs, 3, dys, 3, dws, 3, null, p);
      g.backwardBias(dys, 3, dbs, 3, p);
      return new Passes(back(ys, y.length), back(dxs, dx.length), back(dws, dw.length), back(dbs, db.length));
    }
  }

  static MemorySegment copy(Arena arena, float[] v, int offset) {
    MemorySegment s = arena.allocate(4L * (v.length + offset + 5));
    MemorySegment.copy(v, 0, s, ValueLayout.JAVA_FLOAT, 4L * offset, v.length);
    return s;
  }

  static float[] back(MemorySegment s, int length) {
    float[] v = new float[length];
    MemorySegment.copy(s, ValueLayout.JAVA_FLOAT, 12, v, 0, length);
    return v;
  }

  static double[] abs(double[] v) {
    if (v == null) {
      return null;
    }
    double[] a = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      a[i] = Math.abs(v[i]);
    }
    return a;
  }
}
