package dev.lanes.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/**
 * The unpacked path ({@link GemmDirectKernel}) against the packed one, bit for bit. A product with
 * B packed ahead ({@link PackedB}) always goes the packed way; the same product with B in a native
 * segment goes the unpacked way when {@code GemmTask.unpacked} says so, which each case asserts,
 * so that the comparison is between the two paths and not one path with itself. Both give every
 * element the same FMA chain and the same merge into C, so equality is the property.
 *
 * <p>The grid covers each branch of {@code GemmTask.direct}: whole 4-row tiles and the 1-3 rows
 * left at the bottom (m = 1..9, 64, 67), whole 64-column tiles and the narrow panels of the columns
 * left over (n from 1 to 130 around multiples of 16, 32 and 64), the kernel storing into C itself
 * (alpha 1, beta 0, native C) or through the tile (any other alpha or beta, or C on the heap), and
 * C's previous contents where beta is not 0. The checks of the random shapes against the double
 * reference are in the verification module.
 */
class GemmDirectPathTest {
  private static final int[] ROWS = {1, 2, 3, 4, 5, 7, 8, 9, 64, 67};
  private static final int[] COLUMNS = {1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 95, 96, 100, 128, 130};
  private static final int[] DEPTHS = {1, 5, 64};
  private static final float[][] ALPHA_BETA = {{1f, 0f}, {0.75f, 0f}, {1f, 1f}, {-1.5f, 0.5f}};

  @Test
  void unpackedProductsAreBitwiseThePackedOnes() {
    int cases = 0;
    try (Arena arena = Arena.ofConfined()) {
      PackedB packed = PackedB.allocate(64, 130);
      for (int m : ROWS) {
        for (int n : COLUMNS) {
          for (int k : DEPTHS) {
            for (float[] ab : ALPHA_BETA) {
              for (boolean heapC : new boolean[] {false, true}) {
                assertSameBits(arena, packed, m, n, k, ab[0], ab[1], heapC);
                cases++;
              }
            }
          }
        }
      }
    }
    assertEquals(ROWS.length * COLUMNS.length * DEPTHS.length * ALPHA_BETA.length * 2, cases);
  }

  /** With two threads a call splits its rows (or, when wide and short, its columns) between them. */
  @Test
  void unpackedProductsSplitBetweenThreadsAreBitwiseThePackedOnes() {
    try (Arena arena = Arena.ofShared()) {
      PackedB packed = PackedB.allocate(64, 300);
      assertSameBits(arena, packed, 200, 150, 64, 1f, 0f, false, Parallelism.threads(2));
      assertSameBits(arena, packed, 24, 300, 64, 1f, 0f, false, Parallelism.threads(2));
      assertSameBits(arena, packed, 24, 300, 64, 0.5f, 2f, false, Parallelism.threads(2));
    }
  }

  private static void assertSameBits(Arena arena, PackedB packed, int m, int n, int k, float alpha, float beta,
      boolean heapC) {
    assertSameBits(arena, packed, m, n, k, alpha, beta, heapC, Parallelism.sequential());
  }

  private static void assertSameBits(Arena arena, PackedB packed, int m, int n, int k, float alpha, float beta,
      boolean heapC, Parallelism parallelism) {
    // Padded leading dimensions and offsets, so that no row starts where a dense one would (A's
    // padding stays within the unpacked path's limit, lda <= 2k).
    int lda = k + k / 4;
    int ldb = n + 5;
    int ldc = n + 2;
    int offA = 7;
    int offB = 3;
    int offC = 5;
    MemorySegment a = filled(arena, offA + m * lda, 1);
    MemorySegment b = filled(arena, offB + k * ldb, 2);
    float[] c0 = filled(arena, offC + m * ldc, 3).toArray(ValueLayout.JAVA_FLOAT);
    String shape = m + "x" + n + "x" + k + " alpha " + alpha + " beta " + beta + (heapC ? ", C on the heap" : "");
    assertEquals(GemmMicroKernel.MR == 12, GemmTask.unpacked(false, false, m, n, k, lda, alpha, true),
        "expected the unpacked path (at 512 bits) for " + shape);

    MemorySegment unpacked = heapC ? MemorySegment.ofArray(c0.clone()) : copy(arena, c0);
    Gemm.sgemm(Transpose.NONE, Transpose.NONE, m, n, k, alpha, a, offA, lda, b, offB, ldb, beta, unpacked, offC, ldc,
        parallelism);

    packed.pack(Transpose.NONE, k, n, b, offB, ldb);
    MemorySegment viaPacked = copy(arena, c0);
    Gemm.sgemm(Transpose.NONE, m, alpha, a, offA, lda, packed, beta, viaPacked, offC, ldc, parallelism);

    assertArrayEquals(viaPacked.toArray(ValueLayout.JAVA_FLOAT), unpacked.toArray(ValueLayout.JAVA_FLOAT),
        "the unpacked path changed the bits of " + shape);
  }

  /** Irregular values whose products round, so that a different order of operations would show. */
  private static MemorySegment filled(Arena arena, int floats, int salt) {
    MemorySegment s = arena.allocate((long) floats * Float.BYTES, 64);
    for (int i = 0; i < floats; i++) {
      s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) Math.sin(0.37 * i + salt) * (1 + i % 7));
    }
    return s;
  }

  private static MemorySegment copy(Arena arena, float[] x) {
    MemorySegment s = arena.allocate((long) x.length * Float.BYTES, 64);
    MemorySegment.copy(x, 0, s, ValueLayout.JAVA_FLOAT, 0, x.length);
    return s;
  }
}
