package dev.lanes.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;

/**
 * BLAS special cases of {@link Gemm}, with exact expected values. (Random shapes against the double
 * reference, bad-argument properties and thread invariance live in the verification module.)
 */
class GemmTest {
  private static final Transpose N = Transpose.NONE;

  @Test
  void betaZeroDoesNotReadC() {
    float[] a = {1, 2, 3, 4};
    float[] b = {5, 6, 7, 8};
    float[] c = {Float.NaN, Float.POSITIVE_INFINITY, Float.NaN, -0f};
    Gemm.sgemm(N, N, 2, 2, 2, 1f, a, 0, 2, b, 0, 2, 0f, c, 0, 2);
    // Small integers: every product and sum is exact in float.
    assertArrayEquals(new float[] {19, 22, 43, 50}, c);
  }

  @Test
  void alphaZeroScalesCWithoutReadingAOrB() {
    float[] a = {Float.NaN, Float.NaN, Float.NaN, Float.NaN};
    float[] b = {Float.NaN, Float.NaN, Float.NaN, Float.NaN};
    float[] c = {1, 2, 3, 4};
    Gemm.sgemm(N, N, 2, 2, 2, 0f, a, 0, 2, b, 0, 2, 2f, c, 0, 2);
    assertArrayEquals(new float[] {2, 4, 6, 8}, c);
  }

  @Test
  void kZeroMeansCIsBetaTimesC() {
    float[] c = {1, 2, 3, 4, 5, 6};
    Gemm.sgemm(N, N, 2, 3, 0, 1f, new float[0], 0, 1, new float[0], 0, 3, -1f, c, 0, 3);
    assertArrayEquals(new float[] {-1, -2, -3, -4, -5, -6}, c);
  }

  @Test
  void emptyOutputIsLegalAndTouchesNothing() {
    float[] c = {7};
    Gemm.sgemm(N, N, 0, 5, 3, 1f, new float[0], 0, 3, new float[15], 0, 5, 0f, c, 0, 5);
    Gemm.sgemm(N, N, 5, 0, 3, 1f, new float[15], 0, 3, new float[0], 0, 1, 0f, c, 0, 1);
    assertArrayEquals(new float[] {7}, c);
  }

  @Test
  void transposesAndOffsetsAddressTheRightElements() {
    // A = [[1,2,3],[4,5,6]] stored transposed (3 x 2) after 1 float of offset, lda 3 (one pad).
    float[] at = {99, 1, 4, 99, 2, 5, 99, 3, 6, 99};
    // B = [[1,0],[0,1],[1,1]] stored transposed (2 x 3), ldb 3.
    float[] bt = {1, 0, 1, 0, 1, 1};
    float[] c = new float[5];
    Arrays.fill(c, -7f);
    Gemm.sgemm(Transpose.TRANSPOSE, Transpose.TRANSPOSE, 2, 2, 3, 1f, at, 1, 3, bt, 0, 3, 0f, c, 1, 2);
    assertArrayEquals(new float[] {-7, 4, 5, 10, 11}, c);
  }

  @Test
  void errorsNameTheArgumentAndTheNumbers() {
    IllegalArgumentException lda = assertThrows(IllegalArgumentException.class,
        () -> Gemm.sgemm(N, N, 4, 4, 5, 1f, new float[20], 0, 4, new float[20], 0, 4, 0f, new float[16], 0, 4));
    assertEquals("lda = 4 is smaller than required 5 (A (transA = NONE) is stored m x k = 4 x 5, row-major)",
        lda.getMessage());
    IndexOutOfBoundsException c = assertThrows(IndexOutOfBoundsException.class,
        () -> Gemm.sgemm(N, N, 4, 4, 4, 1f, new float[16], 0, 4, new float[16], 0, 4, 0f, new float[16], 1, 4));
    assertTrue(c.getMessage().startsWith("c: a 4x4 matrix with leading dimension 4 at offset 1 needs floats [1, 17)"),
        c.getMessage());
    IllegalArgumentException m = assertThrows(IllegalArgumentException.class,
        () -> Gemm.sgemm(N, N, -3, 4, 4, 1f, new float[16], 0, 4, new float[16], 0, 4, 0f, new float[16], 0, 4));
    assertEquals("m = -3 must be >= 0", m.getMessage());
  }

  @Test
  void anExecutorThatRejectsEverythingStillGivesTheSameBits() {
    java.util.concurrent.Executor refuses = task -> {
      throw new java.util.concurrent.RejectedExecutionException("saturated");
    };
    assertArrayEquals(squareProduct(200, Parallelism.sequential()), squareProduct(200, Parallelism.on(refuses, 3)));
  }

  @Test
  void aCallersExecutorGivesTheSameBitsAsOneThread() {
    ExecutorService executor = Executors.newFixedThreadPool(3);
    try {
      assertArrayEquals(squareProduct(150, Parallelism.sequential()),
          squareProduct(150, Parallelism.on(executor, 4)));
    } finally {
      executor.shutdown();
    }
  }

  /**
   * An executor that runs each part to the end on the submitting thread, before the caller's own
   * part starts: the parts never overlap. A part must then never wait for another (the stage
   * barrier this GEMM once had would hang here); 300 rows and k = 300 make several blocks and
   * stages, so the blocks' stage order is exercised.
   */
  @Test
  @org.junit.jupiter.api.Timeout(60)
  void anExecutorThatRunsThePartsOneAfterAnotherGivesTheSameBits() {
    java.util.concurrent.Executor inline = Runnable::run;
    assertArrayEquals(squareProduct(300, Parallelism.sequential()), squareProduct(300, Parallelism.on(inline, 2)));
  }

  /** A x B for two fixed size x size matrices with irregular entries. */
  private static float[] squareProduct(int size, Parallelism parallelism) {
    float[] a = new float[size * size];
    float[] b = new float[size * size];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) Math.sin(i);
      b[i] = (float) Math.cos(3 * i);
    }
    float[] c = new float[size * size];
    Gemm.sgemm(N, N, size, size, size, 1f, a, 0, size, b, 0, size, 0f, c, 0, size, parallelism);
    return c;
  }
}
