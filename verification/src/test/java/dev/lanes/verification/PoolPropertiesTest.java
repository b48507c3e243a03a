package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.GlobalPool;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Pool2d;
import dev.lanes.kernels.reference.PoolReference;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * Pool2d and GlobalPool against the double reference (max exactly, values and argmax; average
 * within derived bounds), the reference's backward against central differences, the adjoint
 * identities, and bitwise agreement across thread counts.
 *
 * <p>Bounds, {@code u = 2^-24}, {@code T = kernelH*kernelW}, |.| the reference on absolute
 * values: max forward is a selection, exact. Average forward sums at most T floats and divides
 * once: {@code (T + 1) u |y|}, doubled for slack in the lane order of the sum. Max backward adds at
 * most T overlapping contributions per input: {@code T u |dx|}; average backward adds at most T
 * shares, each one division: {@code 2 (T + 1) u |dx|}.
 */
class PoolPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);

  /** A random pooling shape and the seed of its data; {@code ties} draws values from a few integers. */
  record Case(Pool2d pool, boolean countIncludePad, int data, long seed) {
    static Gen<Case> cases(int maxSide) {
      return SourceDSL.longs().all().map(seed -> random(seed, maxSide));
    }

    static Case random(long seed, int maxSide) {
      SplittableRandom r = new SplittableRandom(seed);
      int kh = 1 + r.nextInt(4);
      int kw = 1 + r.nextInt(4);
      int sh = 1 + r.nextInt(4);
      int sw = 1 + r.nextInt(r.nextBoolean() ? 2 : 5);
      int ph = r.nextInt(kh / 2 + 1);
      int pw = r.nextInt(kw / 2 + 1);
      int h = Math.max(1, kh - 2 * ph) + r.nextInt(maxSide);
      int w = Math.max(1, kw - 2 * pw) + r.nextInt(3 * maxSide);
      Pool2d pool = Pool2d.builder(1 + r.nextInt(2), 1 + r.nextInt(3), h, w).kernel(kh, kw).stride(sh, sw)
          .padding(ph, pw).build();
      return new Case(pool, r.nextBoolean(), r.nextInt(4), seed);
    }

    /**
     * Input data. 0: distinct values at least 1/64 apart (no ties, so the max is smooth within eps);
     * 1: a few integers (many ties); 2: distinct values with NaNs; 3: -inf and a few integers;
     * 4: mostly -inf, so that whole windows are -inf and the index rule for them is exercised.
     */
    float[] x() {
      SplittableRandom r = new SplittableRandom(seed);
      int n = (int) pool.inputFloats();
      float[] x = new float[n];
      for (int i = 0; i < n; i++) {
        x[i] = switch (data) {
          case 1 -> r.nextInt(3);
          case 2 -> r.nextInt(40) == 0 ? Float.NaN : i;
          case 3 -> r.nextInt(4) == 0 ? Float.NEGATIVE_INFINITY : r.nextInt(2);
          case 4 -> r.nextInt(8) == 0 ? r.nextInt(2) : Float.NEGATIVE_INFINITY;
          default -> i;
        };
      }
      if (data == 0 || data == 2) {
        // A random permutation of 0..n-1, scaled: distinct values in random places.
        for (int i = n - 1; i > 0; i--) {
          int j = r.nextInt(i + 1);
          float t = x[i];
          x[i] = x[j];
          x[j] = t;
        }
        for (int i = 0; i < n; i++) {
          x[i] = (x[i] - n / 2f) / 64f;
        }
      }
      return x;
    }

    float[] dy() {
      SplittableRandom r = new SplittableRandom(~seed);
      float[] dy = new float[(int) pool.outputFloats()];
      for (int i = 0; i < dy.length; i++) {
        dy[i] = (float) (r.nextDouble() * 2 - 1);
      }
      return dy;
    }
  }

  record Passes(float[] maxY, int[] argmax, float[] maxDx, float[] avgY, float[] avgDx) {}

  static Passes run(Case c, boolean segments, Parallelism p) {
    Pool2d g = c.pool();
    float[] x = c.x();
    float[] dy = c.dy();
    int outputs = (int) g.outputFloats();
    int inputs = (int) g.inputFloats();
    if (!segments) {
      float[] maxY = new float[outputs];
      int[] argmax = new int[outputs];
      float[] maxDx = new float[inputs];
      float[] avgY = new float[outputs];
      float[] avgDx = new float[inputs];
      g.maxForward(x, 0, maxY, 0, argmax, 0);
      g.maxBackward(dy, 0, argmax, 0, maxDx, 0);
      g.avgForward(x, 0, avgY, 0, c.countIncludePad());
      g.avgBackward(dy, 0, avgDx, 0, c.countIncludePad());
      return new Passes(maxY, argmax, maxDx, avgY, avgDx);
    }
    try (Arena arena = Arena.ofShared()) {
      MemorySegment xs = ConvPropertiesTest.copy(arena, x, 3);
      MemorySegment dys = ConvPropertiesTest.copy(arena, dy, 3);
      MemorySegment maxY = arena.allocate(4L * (outputs + 3));
      MemorySegment argmax = arena.allocate(4L * (outputs + 3));
      MemorySegment maxDx = arena.allocate(4L * (inputs + 3));
      MemorySegment avgY = arena.allocate(4L * (outputs + 3));
      MemorySegment avgDx = arena.allocate(4L * (inputs + 3));
      // Outputs start as NaN: every pass must overwrite all of its output, not add to what was there.
      for (MemorySegment output : new MemorySegment[] {maxY, maxDx, avgY, avgDx}) {
        output.fill((byte) 0xFF);
      }
      g.maxForward(xs, 3, maxY, 3, argmax, 3, p);
      g.maxBackward(dys, 3, argmax, 3, maxDx, 3, p);
      g.avgForward(xs, 3, avgY, 3, c.countIncludePad(), p);
      g.avgBackward(dys, 3, avgDx, 3, c.countIncludePad(), p);
      int[] idx = new int[outputs];
      MemorySegment.copy(argmax, ValueLayout.JAVA_INT, 12, idx, 0, outputs);
      return new Passes(ConvPropertiesTest.back(maxY, outputs), idx, ConvPropertiesTest.back(maxDx, inputs),
          ConvPropertiesTest.back(avgY, outputs), ConvPropertiesTest.back(avgDx, inputs));
    }
  }

  @Test
  void referenceBackwardMatchesCentralDifferences() {
    Properties.qt(100).forAll(Case.cases(9)).checkAssert(c0 -> {
      Case c = new Case(c0.pool(), c0.countIncludePad(), 0, c0.seed()); // distinct values: no kinks within eps
      Pool2d g = c.pool();
      double[] x = Doubles.of(c.x());
      double[] dy = Doubles.of(c.dy());
      int taps = g.kernelH() * g.kernelW();
      double magnitude = Doubles.absDot(dy, PoolReference.avgForward(g, ConvPropertiesTest.abs(x), c.countIncludePad()))
          + Doubles.absDot(dy, PoolReference.maxForward(g, ConvPropertiesTest.abs(x)).y());
      double error = NumericalGradient.roundoff(taps + 1, taps * magnitude);
      PoolReference.Max max = PoolReference.maxForward(g, x);
      NumericalGradient.check("max dx", x, dy, PoolReference.maxBackward(g, dy, max.argmax()),
          xs -> PoolReference.maxForward(g, xs).y(), error, 40);
      NumericalGradient.check("avg dx", x, dy, PoolReference.avgBackward(g, dy, c.countIncludePad()),
          xs -> PoolReference.avgForward(g, xs, c.countIncludePad()), error, 40);
    });
  }

  @Test
  void everyPassMatchesTheReference() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(400).forAll(Case.cases(12)).checkAssert(c -> {
      boolean segments = cases.incrementAndGet() % 2 == 0;
      Passes out = run(c, segments, segments ? Parallelism.threads(2) : Parallelism.sequential());
      Pool2d g = c.pool();
      double[] x = Doubles.of(c.x());
      double[] dy = Doubles.of(c.dy());
      int taps = g.kernelH() * g.kernelW();
      PoolReference.Max max = assertMaxIsExact(c, x, out);
      ConvPropertiesTest.assertClose("max dx", c, out.maxDx(), PoolReference.maxBackward(g, dy, max.argmax()),
          PoolReference.maxBackward(g, ConvPropertiesTest.abs(dy), max.argmax()), taps * U);
      if (c.data() != 2 && c.data() != 3) { // averages of NaN or -inf are not interesting to bound
        ConvPropertiesTest.assertClose("avg y", c, out.avgY(), PoolReference.avgForward(g, x, c.countIncludePad()),
            PoolReference.avgForward(g, ConvPropertiesTest.abs(x), c.countIncludePad()), 2 * (taps + 1) * U);
      }
      ConvPropertiesTest.assertClose("avg dx", c, out.avgDx(), PoolReference.avgBackward(g, dy, c.countIncludePad()),
          PoolReference.avgBackward(g, ConvPropertiesTest.abs(dy), c.countIncludePad()), 2 * (taps + 1) * U);
    });
    assertTrue(cases.get() >= 400, "only " + cases.get() + " cases ran");
  }

  /** Max forward must equal the reference on x (c's input) bit for bit, value and index, at every output. */
  private static PoolReference.Max assertMaxIsExact(Case c, double[] x, Passes out) {
    PoolReference.Max max = PoolReference.maxForward(c.pool(), x);
    for (int o = 0; o < max.y().length; o++) {
      float want = (float) max.y()[o];
      if (!(Float.floatToIntBits(want) == Float.floatToIntBits(out.maxY()[o]) && max.argmax()[o] == out.argmax()[o])) {
        throw new AssertionError("max output " + o + ": " + out.maxY()[o] + " at " + out.argmax()[o]
            + ", reference " + want + " at " + max.argmax()[o] + " for " + c);
      }
    }
    return max;
  }

  /**
   * Max pooling 3 x 3 at stride 2 (ResNet's stem pool) has a path of its own, which splits input
   * rows into their even and odd columns, reads the left padding from a stored -inf, keeps each
   * output row's last row maxima for the next, and stands in a row of -inf for a missing bottom
   * row. Random shapes of that kind: padding 0 or 1 each way, odd and even sides, some rows too
   * narrow for the path (fewer outputs than a vector and two), every kind of data; exact values
   * and indices.
   */
  @Test
  void strideTwoThreeByThreeMaxIsExact() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom r = new SplittableRandom(seed);
      int ph = r.nextInt(2);
      int pw = r.nextInt(2);
      int h = 3 - 2 * ph + r.nextInt(10);
      int w = 16 + r.nextInt(70);
      Pool2d pool = Pool2d.builder(1 + r.nextInt(2), 1 + r.nextInt(3), h, w).kernel(3, 3).stride(2, 2)
          .padding(ph, pw).build();
      Case c = new Case(pool, false, r.nextInt(5), seed);
      boolean segments = cases.incrementAndGet() % 2 == 0;
      Passes out = run(c, segments, segments ? Parallelism.threads(2) : Parallelism.sequential());
      assertMaxIsExact(c, Doubles.of(c.x()), out);
    });
    assertTrue(cases.get() >= 200, "only " + cases.get() + " cases ran");
  }

  @Test
  void backwardsAreAdjointsOfTheForwards() {
    Properties.qt(200).forAll(Case.cases(12)).checkAssert(c0 -> {
      Case c = new Case(c0.pool(), c0.countIncludePad(), 0, c0.seed());
      Passes out = run(c, true, Parallelism.threads(2));
      Pool2d g = c.pool();
      double[] x = Doubles.of(c.x());
      double[] y = Doubles.of(c.dy());
      int taps = g.kernelH() * g.kernelW();
      // Max: with the argmax fixed, max pooling is the linear map x -> x[argmax], and maxBackward
      // its transpose. Average is linear. Allowed: each side's float error weighted by the other operand.
      double maxLhs = Doubles.dot(Doubles.of(out.maxY()), y);
      double maxRhs = Doubles.dot(x, Doubles.of(out.maxDx()));
      double maxAllowed = taps * U * Doubles.absDot(x, PoolReference.maxBackward(g, ConvPropertiesTest.abs(y),
          out.argmax())) + 1e-12 * Doubles.absDot(Doubles.of(out.maxY()), y);
      ConvPropertiesTest.assertAdjoint("<max(x), y> vs <x, maxBackward(y)>", c, maxLhs, maxRhs, maxAllowed);
      double avgLhs = Doubles.dot(Doubles.of(out.avgY()), y);
      double avgRhs = Doubles.dot(x, Doubles.of(out.avgDx()));
      double avgAllowed = 2 * (taps + 1) * U * (Doubles.absDot(y,
          PoolReference.avgForward(g, ConvPropertiesTest.abs(x), c.countIncludePad()))
          + Doubles.absDot(x, PoolReference.avgBackward(g, ConvPropertiesTest.abs(y), c.countIncludePad())));
      ConvPropertiesTest.assertAdjoint("<avg(x), y> vs <x, avgBackward(y)>", c, avgLhs, avgRhs, avgAllowed);
    });
  }

  @Test
  void resultsAreBitwiseIdenticalForAnyThreadCount() {
    Properties.qt(20).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Case small = Case.random(seed, 40);
      Pool2d g0 = small.pool();
      // Enough planes (and floats) for the call to split.
      Pool2d g = Pool2d.builder(4, 16, g0.height(), g0.width()).kernel(g0.kernelH(), g0.kernelW())
          .stride(g0.strideH(), g0.strideW()).padding(g0.padH(), g0.padW()).build();
      Case c = new Case(g, small.countIncludePad(), small.data(), seed);
      Passes one = run(c, true, Parallelism.sequential());
      Passes two = run(c, true, Parallelism.threads(2));
      assertArrayEquals(one.maxY(), two.maxY());
      assertArrayEquals(one.argmax(), two.argmax());
      assertArrayEquals(one.maxDx(), two.maxDx());
      assertArrayEquals(one.avgY(), two.avgY());
      assertArrayEquals(one.avgDx(), two.avgDx());
    });
  }

  @Test
  void globalPoolsMatchTheReference() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom r = new SplittableRandom(seed);
      int batch = 1 + r.nextInt(3);
      int channels = 1 + r.nextInt(4);
      int positions = 1 + r.nextInt(r.nextBoolean() ? 20 : 300);
      int planes = batch * channels;
      Case data = new Case(Pool2d.builder(1, planes, 1, positions).kernel(1, 1).build(), true, r.nextInt(4), seed);
      float[] x = data.x();
      float[] dy = new float[planes];
      for (int i = 0; i < planes; i++) {
        dy[i] = (float) (r.nextDouble() * 2 - 1);
      }
      MemorySegment xs = MemorySegment.ofArray(x);
      float[] maxY = new float[planes];
      int[] argmax = new int[planes];
      float[] avgY = new float[planes];
      float[] maxDx = new float[x.length];
      float[] avgDx = new float[x.length];
      if (r.nextBoolean()) { // the segment entry points
        GlobalPool.maxOverTime(batch, channels, positions, xs, 0, MemorySegment.ofArray(maxY), 0,
            MemorySegment.ofArray(argmax), 0);
        GlobalPool.maxOverTimeBackward(batch, channels, positions, MemorySegment.ofArray(dy), 0,
            MemorySegment.ofArray(argmax), 0, MemorySegment.ofArray(maxDx), 0);
        GlobalPool.avgForward(batch, channels, positions, xs, 0, MemorySegment.ofArray(avgY), 0);
        GlobalPool.avgBackward(batch, channels, positions, MemorySegment.ofArray(dy), 0, MemorySegment.ofArray(avgDx),
            0);
      } else { // the float[] overloads
        GlobalPool.maxOverTime(batch, channels, positions, x, 0, maxY, 0, argmax, 0);
        GlobalPool.maxOverTimeBackward(batch, channels, positions, dy, 0, argmax, 0, maxDx, 0);
        GlobalPool.avgForward(batch, channels, positions, x, 0, avgY, 0);
        GlobalPool.avgBackward(batch, channels, positions, dy, 0, avgDx, 0);
      }
      PoolReference.Max max = PoolReference.globalMaxForward(planes, positions, Doubles.of(x));
      for (int p = 0; p < planes; p++) {
        assertEquals(Float.floatToIntBits((float) max.y()[p]), Float.floatToIntBits(maxY[p]), "max of plane " + p);
        assertEquals(max.argmax()[p], argmax[p], "argmax of plane " + p);
      }
      assertArrayEquals(toFloat(PoolReference.globalMaxBackward(planes, positions, Doubles.of(dy), argmax)), maxDx);
      // The mean: a sum of P floats in LANES partial sums and a division, within (P + 1) u |y|.
      if (data.data() != 2 && data.data() != 3) {
        ConvPropertiesTest.assertClose("global avg y", data, avgY, PoolReference.globalAvgForward(planes, positions,
            Doubles.of(x)), PoolReference.globalAvgForward(planes, positions, Doubles.abs(x)), (positions + 1) * U);
      }
      // Backward is one division per plane, correctly rounded: within u of the reference.
      ConvPropertiesTest.assertClose("global avg dx", data, avgDx, PoolReference.globalAvgBackward(planes, positions,
          Doubles.of(dy)), PoolReference.globalAvgBackward(planes, positions, Doubles.abs(dy)), U);
    });
  }

  private static float[] toFloat(double[] v) {
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return f;
  }
}
