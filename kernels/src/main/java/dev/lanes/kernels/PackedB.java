package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A right-hand operand op(B) packed once, for many products {@code C = alpha * op(A) * B + beta * C}
 * with the same B: the recurrent weight of an LSTM across its T steps, or a dense layer's weight
 * across batches. A plain {@link Gemm#sgemm} call packs its B again every time; for a short,
 * wide product such as one LSTM step ({@code [64, 256] x [256, 1024]}) re-packing the 1 MB weight
 * costs about a quarter of the multiply.
 *
 * <p>Layout: op(B) (k x n) as ceil(n/NR) panels of NR columns, each panel k-major over the whole
 * of k ({@code data[panel * k * NR + p * NR + j] = op(B)[p][panel * NR + j]}, zero past n), which is
 * what the micro-kernel streams, NR being two vectors. A product reads each KC-row chunk of a panel
 * in the same order as the unpacked GEMM, so the results are bitwise identical to
 * {@link Gemm#sgemm} with the same B.
 *
 * <p>An instance owns a {@code float[]} sized for a maximum k x n, allocated once; packing and
 * products allocate nothing. Packing a new B over an old one is allowed between products. It is
 * not safe to pack while another thread multiplies with the same instance.
 */
public final class PackedB {
  private final float[] data;
  private int k = -1;
  private int n = -1;

  private PackedB(int floats) {
    data = new float[floats];
  }

  /** Floats a packed k x n operand needs: {@code k * ceil(n / NR) * NR}, NR being two vectors. */
  public static long floats(int k, int n) {
    Checks.nonNegative(k, "k");
    Checks.nonNegative(n, "n");
    int nr = GemmMicroKernel.NR;
    return (long) k * ((n + nr - 1L) / nr * nr);
  }

  /** Room for any op(B) of up to {@code floats(maxK, maxN)} floats. */
  public static PackedB allocate(int maxK, int maxN) {
    long floats = floats(maxK, maxN);
    if (floats > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException(
          "a packed " + maxK + " x " + maxN + " operand needs " + floats + " floats, more than one Java array holds");
    }
    return new PackedB((int) floats);
  }

  /** The k of the operand packed last, or -1 before the first {@link #pack}. */
  public int k() {
    return k;
  }

  /** The n of the operand packed last, or -1 before the first {@link #pack}. */
  public int n() {
    return n;
  }

  /**
   * Packs op(B), k x n: B stored k x n ({@link Transpose#NONE}, {@code ldb >= max(1, n)}) or n x k
   * ({@link Transpose#TRANSPOSE}, {@code ldb >= max(1, k)}), element (i, j) of the stored matrix at
   * float index {@code bOffset + i * ldb + j}, as in {@link Gemm}.
   */
  public void pack(Transpose transB, int k, int n, MemorySegment b, long bOffset, int ldb) {
    Checks.notNull(transB, "transB");
    Checks.nonNegative(k, "k");
    Checks.nonNegative(n, "n");
    boolean transposed = transB == Transpose.TRANSPOSE;
    if (transposed) {
      Checks.leadingDimension(ldb, "ldb", k, "B (transB = TRANSPOSE) is stored n x k =", n);
    } else {
      Checks.leadingDimension(ldb, "ldb", n, "B (transB = NONE) is stored k x n =", k);
    }
    Checks.readable(b, "b");
    Checks.extent("b", bOffset, transposed ? n : k, transposed ? k : n, ldb, Checks.floats(b));
    long needed = floats(k, n);
    if (needed > data.length) {
      throw new IllegalArgumentException("a packed " + k + " x " + n + " operand needs " + needed
          + " floats; this PackedB has room for " + data.length);
    }
    packValidated(transposed, k, n, b, bOffset, ldb);
  }

  /** {@link #pack} for callers that validated B already. */
  void packValidated(boolean transposed, int k, int n, MemorySegment b, long bOffset, int ldb) {
    GemmWorkspace ws = GemmWorkspace.forCurrentThread();
    int nr = GemmMicroKernel.NR;
    int kcMax = GemmBlocking.KC;
    long ldbBytes = (long) ldb * Float.BYTES;
    // KC rows at a time: the transposing packer stages NR x KC floats in the workspace's scratch.
    for (int pc = 0; pc < k; pc += kcMax) {
      int kc = Math.min(kcMax, k - pc);
      for (int j = 0, panel = 0; j < n; j += nr, panel++) {
        GemmPacking.packB(transposed, b, bOffset * Float.BYTES, ldbBytes, pc, kc, j, Math.min(nr, n - j), data,
            panel * k * nr + pc * nr, ws.transposeScratch, ws.bMap);
      }
    }
    this.k = k;
    this.n = n;
  }

  float[] data() {
    return data;
  }

  /** Whether this instance can hold a k x n operand. */
  boolean fits(int k, int n) {
    return floats(k, n) <= data.length;
  }
}
