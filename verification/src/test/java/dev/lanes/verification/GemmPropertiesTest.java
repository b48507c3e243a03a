package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.GemmReference;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;

/**
 * Gemm against its double-precision reference, on random shapes, transposes, padding, offsets and
 * scalars; and bitwise agreement across thread counts.
 *
 * <p>The bound, checked per element of C: {@code |C - Cref| <= 4 max(k,1) u (|alpha| (|A||B|) + |beta| |C0|)},
 * {@code u = 2^-24}. Derivation: a float dot product accumulated with FMAs rounds once per k step,
 * so its error is at most {@code k u |A||B|} to first order (Higham, ch. 3). On top come at most
 * one rounding for alpha, one for the merge with beta*C0 (one more for beta*C0 itself) and one per
 * KC chunk of k: {@code (k + 3 + k/KC) u <= 4 k u} for every k >= 1. For k = 0 only beta*C0 is
 * rounded, once, which 4 u |beta||C0| covers; hence max(k,1).
 */
class GemmPropertiesTest {
  private static final double U = Math.scalb(1.0, -24);

  @Test
  void matchesDoubleReferenceOnArrays() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(500).forAll(GemmCase.cases(300)).checkAssert(c -> {
      cases.incrementAndGet();
      assertWithinBound(c, false, Parallelism.sequential());
    });
    assertTrue(cases.get() >= 500, "only " + cases.get() + " cases ran");
  }

  @Test
  void matchesDoubleReferenceOnSegmentsWithTwoThreads() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(500).forAll(GemmCase.cases(300)).checkAssert(c -> {
      cases.incrementAndGet();
      assertWithinBound(c, true, Parallelism.threads(2));
    });
    assertTrue(cases.get() >= 500, "only " + cases.get() + " cases ran");
  }

  /**
   * The sizes above stay below the depth of one stage (KC) of the 512-bit kernel, which is derived
   * from the machine's L1 and can be 768 or more, so on their own they would never send that
   * kernel through a second stage, where beta no longer applies and the tile is added to C. These
   * cases take k up to 2100, past two stages of any KC the blocking derives (at most 1024), with
   * small m and n to keep the double reference cheap.
   */
  @Test
  void matchesDoubleReferenceWhenKSpansSeveralStages() {
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(60).forAll(GemmCase.cases(0, 40, 1, 2100)).checkAssert(c -> {
      cases.incrementAndGet();
      assertWithinBound(c, cases.get() % 2 == 0, Parallelism.sequential());
    });
    assertTrue(cases.get() >= 60, "only " + cases.get() + " cases ran");
  }

  @Test
  void resultIsBitwiseIdenticalForAnyThreadCount() {
    // Large enough that calls really split (Gemm stays on one thread below about 2*96^3 flops):
    // every dimension at least 160, so m*n*k >= 4.1M. Generated, not filtered: filtering with
    // assuming() let QuickTheories give up when its first draws were small.
    Gen<GemmCase> big = GemmCase.cases(160, 420);
    Properties.qt(40).forAll(big).checkAssert(c -> {
      float[] one = run(c, false, Parallelism.sequential());
      for (int threads = 2; threads <= 4; threads++) {
        float[] many = run(c, threads % 2 == 0, Parallelism.threads(threads));
        assertArrayEquals(one, many, "threads = " + threads + " changed the result of " + c);
      }
    });
  }

  static float[] run(GemmCase c, boolean onSegments, Parallelism parallelism) {
    float[] a = c.a();
    float[] b = c.b();
    float[] out = c.c();
    if (!onSegments) {
      Gemm.sgemm(c.transA(), c.transB(), c.m(), c.n(), c.k(), c.alpha(), a, c.offA(), c.lda(),
          b, c.offB(), c.ldb(), c.beta(), out, c.offC(), c.ldc(), parallelism);
      return out;
    }
    try (Arena arena = Arena.ofShared()) {
      MemorySegment as = copy(arena, a);
      MemorySegment bs = copy(arena, b);
      MemorySegment cs = copy(arena, out);
      Gemm.sgemm(c.transA(), c.transB(), c.m(), c.n(), c.k(), c.alpha(), as, c.offA(), c.lda(),
          bs, c.offB(), c.ldb(), c.beta(), cs, c.offC(), c.ldc(), parallelism);
      return cs.toArray(ValueLayout.JAVA_FLOAT);
    }
  }

  static MemorySegment copy(Arena arena, float[] x) {
    MemorySegment s = arena.allocate((long) x.length * Float.BYTES, 64);
    MemorySegment.copy(x, 0, s, ValueLayout.JAVA_FLOAT, 0, x.length);
    return s;
  }

  private static void assertWithinBound(GemmCase c, boolean onSegments, Parallelism parallelism) {
    float[] a = c.a();
    float[] b = c.b();
    float[] c0 = c.c();
    float[] got = run(c, onSegments, parallelism);
    double[] exact = GemmReference.sgemm(c.transposedA(), c.transposedB(), c.m(), c.n(), c.k(),
        c.alpha(), a, c.offA(), c.lda(), b, c.offB(), c.ldb(), c.beta(), c0, c.offC(), c.ldc());
    double[] magnitude = GemmReference.sgemm(c.transposedA(), c.transposedB(), c.m(), c.n(), c.k(),
        Math.abs(c.alpha()), abs(a), c.offA(), c.lda(), abs(b), c.offB(), c.ldb(),
        Math.abs(c.beta()), abs(c0), c.offC(), c.ldc());
    double gamma = 4.0 * Math.max(c.k(), 1) * U;
    boolean[] inside = new boolean[got.length];
    for (int i = 0; i < c.m(); i++) {
      for (int j = 0; j < c.n(); j++) {
        int at = c.offC() + i * c.ldc() + j;
        inside[at] = true;
        double error = Math.abs(got[at] - exact[i * c.n() + j]);
        double bound = gamma * magnitude[i * c.n() + j];
        if (!(error <= bound)) {
          throw new AssertionError("C[" + i + "][" + j + "] = " + got[at] + " but reference "
              + exact[i * c.n() + j] + ": error " + error + " > bound " + bound + " in " + c);
        }
      }
    }
    for (int at = 0; at < got.length; at++) {
      if (!inside[at]) {
        assertEquals(Float.floatToRawIntBits(c0[at]), Float.floatToRawIntBits(got[at]),
            "float " + at + " of C lies outside the m x n matrix but was changed, in " + c);
      }
    }
  }

  private static float[] abs(float[] x) {
    float[] y = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = Math.abs(x[i]);
    }
    return y;
  }
}
