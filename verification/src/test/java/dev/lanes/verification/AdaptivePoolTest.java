package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.AdaptivePool;
import dev.lanes.kernels.reference.PoolReference;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * Adaptive pooling against its double reference (whose windows are computed with floating-point
 * floor and ceil, independently of the kernel's integer arithmetic), the reference backward against
 * central differences, and the average's backward as the adjoint of its forward.
 *
 * <p>Bounds, {@code u = 2^-24}: the max picks one input, so y is exact and argmax identical. An
 * average of a window of {@code n} floats rounds n - 1 additions and one division: within
 * {@code (n + 1) u} times the average of |x|. A backward element is a sum over the {@code c} windows
 * that cover it of one rounded share each (or, for the max, of dy): within {@code (c + 1) u} times
 * the same sum on |dy|.
 */
class AdaptivePoolTest {
  private static final double U = Math.scalb(1.0, -24);

  record Case(AdaptivePool pool, float[] x, float[] dy, long seed) {
    static Case random(long seed) {
      SplittableRandom r = new SplittableRandom(seed);
      int h = 1 + r.nextInt(13);
      int w = 1 + r.nextInt(13);
      // Output sizes below, at and above the input's, to cover shrinking, identity and overlap.
      AdaptivePool pool = AdaptivePool.of(1 + r.nextInt(2), 1 + r.nextInt(3), h, w, 1 + r.nextInt(h + 3),
          1 + r.nextInt(w + 3));
      // Distinct values in random places: no ties, and no kinks within a central difference.
      int n = (int) pool.inputFloats();
      float[] x = new float[n];
      for (int i = 0; i < n; i++) {
        x[i] = (float) (i - n / 2) / 8;
      }
      for (int i = n - 1; i > 0; i--) {
        int j = r.nextInt(i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
      }
      float[] dy = RecurrentCases.values(r, (int) pool.outputFloats(), 1);
      return new Case(pool, x, dy, seed);
    }
  }

  @Test
  void referenceBackwardMatchesCentralDifferences() {
    Properties.qt(100).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Case c = Case.random(seed);
      AdaptivePool g = c.pool();
      double[] x = Doubles.of(c.x());
      double[] dy = Doubles.of(c.dy());
      int taps = maxWindowArea(g);
      double magnitude = Doubles.absDot(dy, PoolReference.adaptiveAvgForward(g, ConvPropertiesTest.abs(x)))
          + Doubles.absDot(dy, PoolReference.adaptiveMaxForward(g, ConvPropertiesTest.abs(x)).y());
      double error = NumericalGradient.roundoff(taps + 1, taps * magnitude);
      PoolReference.Max max = PoolReference.adaptiveMaxForward(g, x);
      NumericalGradient.check("adaptive max dx", x, dy, PoolReference.adaptiveMaxBackward(g, dy, max.argmax()),
          xs -> PoolReference.adaptiveMaxForward(g, xs).y(), error, 40);
      NumericalGradient.check("adaptive avg dx", x, dy, PoolReference.adaptiveAvgBackward(g, dy),
          xs -> PoolReference.adaptiveAvgForward(g, xs), error, 40);
    });
  }

  @Test
  void everyPassMatchesTheReference() {
    Properties.qt(300).forAll(SourceDSL.longs().all(), SourceDSL.booleans().all()).checkAssert((seed, arrays) -> {
      Case c = Case.random(seed);
      AdaptivePool g = c.pool();
      int outputs = (int) g.outputFloats();
      int inputs = (int) g.inputFloats();
      float[] maxY = new float[outputs];
      int[] argmax = new int[outputs];
      float[] maxDx = new float[inputs];
      float[] avgY = new float[outputs];
      float[] avgDx = new float[inputs];
      if (arrays) {
        g.maxForward(c.x(), 0, maxY, 0, argmax, 0);
        g.maxBackward(c.dy(), 0, argmax, 0, maxDx, 0);
        g.avgForward(c.x(), 0, avgY, 0);
        g.avgBackward(c.dy(), 0, avgDx, 0);
      } else {
        MemorySegment argmaxs = MemorySegment.ofArray(argmax);
        g.maxForward(MemorySegment.ofArray(c.x()), 0, MemorySegment.ofArray(maxY), 0, argmaxs, 0);
        g.maxBackward(MemorySegment.ofArray(c.dy()), 0, argmaxs, 0, MemorySegment.ofArray(maxDx), 0);
        g.avgForward(MemorySegment.ofArray(c.x()), 0, MemorySegment.ofArray(avgY), 0);
        g.avgBackward(MemorySegment.ofArray(c.dy()), 0, MemorySegment.ofArray(avgDx), 0);
      }
      double[] x = Doubles.of(c.x());
      double[] dy = Doubles.of(c.dy());
      PoolReference.Max max = PoolReference.adaptiveMaxForward(g, x);
      for (int o = 0; o < outputs; o++) {
        assertEquals((float) max.y()[o], maxY[o], "max y[" + o + "] of " + g + " (seed " + seed + ")");
        assertEquals(max.argmax()[o], argmax[o], "argmax[" + o + "] of " + g + " (seed " + seed + ")");
      }
      int area = maxWindowArea(g);
      int cover = maxCoverage(g);
      ConvPropertiesTest.assertClose("adaptive avg y", c, avgY, PoolReference.adaptiveAvgForward(g, x),
          PoolReference.adaptiveAvgForward(g, ConvPropertiesTest.abs(x)), (area + 1) * U);
      ConvPropertiesTest.assertClose("adaptive avg dx", c, avgDx, PoolReference.adaptiveAvgBackward(g, dy),
          PoolReference.adaptiveAvgBackward(g, ConvPropertiesTest.abs(dy)), (cover + 1) * U);
      ConvPropertiesTest.assertClose("adaptive max dx", c, maxDx, PoolReference.adaptiveMaxBackward(g, dy, argmax),
          PoolReference.adaptiveMaxBackward(g, ConvPropertiesTest.abs(dy), argmax), (cover + 1) * U);
    });
  }

  @Test
  void averageBackwardIsTheAdjointOfItsForward() {
    Properties.qt(200).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Case c = Case.random(seed);
      AdaptivePool g = c.pool();
      float[] avgY = new float[(int) g.outputFloats()];
      float[] avgDx = new float[(int) g.inputFloats()];
      g.avgForward(c.x(), 0, avgY, 0);
      g.avgBackward(c.dy(), 0, avgDx, 0);
      double[] x = Doubles.of(c.x());
      double[] y = Doubles.of(c.dy());
      double lhs = Doubles.dot(Doubles.of(avgY), y);
      double rhs = Doubles.dot(x, Doubles.of(avgDx));
      // Each side's float error (bounds above) weighted by the other operand.
      double allowed = (maxWindowArea(g) + maxCoverage(g) + 2) * U * (Doubles.absDot(y,
          PoolReference.adaptiveAvgForward(g, ConvPropertiesTest.abs(x)))
          + Doubles.absDot(x, PoolReference.adaptiveAvgBackward(g, ConvPropertiesTest.abs(y))));
      ConvPropertiesTest.assertAdjoint("<avg(x), y> vs <x, avgBackward(y)>", c, lhs, rhs, allowed);
    });
  }

  @Test
  void badBuffersAreRejectedBeforeAnythingIsWritten() {
    AdaptivePool g = AdaptivePool.of(2, 3, 7, 7, 2, 2);
    float[] y = new float[2 * 3 * 2 * 2 - 1];
    Arrays.fill(y, 5f);
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class,
        () -> g.avgForward(new float[2 * 3 * 7 * 7], 0, y, 0));
    assertTrue(e.getMessage().startsWith("y [N,C,OH,OW] = [2,3,2,2] needs 24 floats"), e.getMessage());
    float[] fives = new float[y.length];
    Arrays.fill(fives, 5f);
    assertArrayEquals(fives, y, "nothing written");
    float[] dx = new float[2 * 3 * 7 * 7];
    int[] badArgmax = new int[24];
    badArgmax[5] = 49;
    IndexOutOfBoundsException e2 = assertThrows(IndexOutOfBoundsException.class,
        () -> g.maxBackward(new float[24], 0, badArgmax, 0, dx, 0));
    assertTrue(e2.getMessage().startsWith("argmax[5] = 49 is outside its plane"), e2.getMessage());
    assertThrows(IllegalArgumentException.class, () -> AdaptivePool.of(1, 1, 4, 4, 0, 1));
  }

  private static int maxWindowArea(AdaptivePool g) {
    int rows = 0;
    for (int i = 0; i < g.outHeight(); i++) {
      rows = Math.max(rows, AdaptivePool.end(i, g.height(), g.outHeight()) - AdaptivePool.start(i, g.height(), g.outHeight()));
    }
    int cols = 0;
    for (int j = 0; j < g.outWidth(); j++) {
      cols = Math.max(cols, AdaptivePool.end(j, g.width(), g.outWidth()) - AdaptivePool.start(j, g.width(), g.outWidth()));
    }
    return rows * cols;
  }

  /** The most windows covering one input element. */
  private static int maxCoverage(AdaptivePool g) {
    return coverage(g.height(), g.outHeight()) * coverage(g.width(), g.outWidth());
  }

  private static int coverage(int in, int out) {
    int most = 0;
    for (int e = 0; e < in; e++) {
      int n = 0;
      for (int i = 0; i < out; i++) {
        if (AdaptivePool.start(i, in, out) <= e && e < AdaptivePool.end(i, in, out)) {
          n++;
        }
      }
      most = Math.max(most, n);
    }
    return most;
  }
}
