package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Single-precision general matrix multiply, {@code C = alpha * op(A) * op(B) + beta * C}, with CBLAS
 * row-major semantics.
 *
 * <h2>Layout</h2>
 * All matrices are row-major. op(A) is m x k, op(B) is k x n, C is m x n. Element (i, j) of a
 * stored matrix X sits at float index {@code xOffset + i * ldx + j}. So:
 * <ul>
 *   <li>A is stored m x k ({@link Transpose#NONE}, {@code lda >= max(1, k)}) or k x m
 *       ({@link Transpose#TRANSPOSE}, {@code lda >= max(1, m)});
 *   <li>B is stored k x n ({@code ldb >= max(1, n)}) or n x k ({@code ldb >= max(1, k)});
 *   <li>C is stored m x n ({@code ldc >= max(1, n)}).
 * </ul>
 * Offsets and leading dimensions count floats, not bytes. Segments are read and written in native
 * byte order, and need no particular alignment.
 *
 * <h2>Semantics</h2>
 * As in BLAS: m, n or k may be 0; when {@code k == 0} or {@code alpha == 0}, A and B are not read
 * and C becomes {@code beta * C}. When {@code beta == 0} C is not read at all, so NaN or infinity
 * already in C does not reach the result. C must not overlap A or B.
 *
 * <h2>Errors</h2>
 * Every argument is checked before anything is read or written. A null argument, a negative
 * dimension, a leading dimension that is too small, or a closed, read-only (for C) or foreign-thread
 * segment throws {@link IllegalArgumentException}; a matrix that does not fit in its segment or
 * array throws {@link IndexOutOfBoundsException}. The messages name the argument and the numbers.
 *
 * <h2>Threads</h2>
 * Calls without a {@link Parallelism} use {@link Parallelism#getDefault()}. Work is split between
 * threads by blocks of rows or columns of C, never along k, so the result is bitwise identical for
 * any thread count.
 *
 * <h2>Accuracy</h2>
 * Each element is a float32 dot product accumulated with fused multiply-adds in k order, so
 * {@code |C - C_exact| <= 4 k u (|alpha| |A||B| + |beta| |C0|)} with {@code u = 2^-24}, elementwise,
 * comfortably (the classical bound is about {@code k u}).
 */
public final class Gemm {
  /**
   * Below this many floating-point operations a call stays on one thread: waking a worker and
   * meeting it again costs about as much as a 100^3 product.
   */
  static final long MIN_FLOPS_PER_THREAD = Long.getLong("lanes.gemm.minFlopsPerThread", 2L * 96 * 96 * 96);

  /**
   * The same threshold when the workers are spinning already (a loop of calls), so that handing out
   * a part costs cache-line hand-offs instead of a wake-up. Those are slow on the 2-vCPU VM this was
   * measured on (a volatile ping-pong between the two threads: 450-490 ns a round trip), and a
   * fan-out with nothing to do took 630-660 ns. So a part needs about a 64^3 product of work:
   * JMH, two threads against one, 96^3 ran at 241 against 169 GFLOPS split this way, but 64^3
   * split in two ran slower than whole (138 against 154). The split never changes the result,
   * only the time.
   */
  static final long MIN_FLOPS_PER_SPINNING_THREAD = Long.getLong("lanes.gemm.minFlopsPerSpinningThread",
      2L * 64 * 64 * 64);

  private Gemm() {}

  /**
   * The vector width, in bits, the kernels were compiled for in this JVM: the preferred width
   * unless {@code -Dlanes.vectorBits=128|256|512} chose another.
   */
  public static int vectorBits() {
    return FloatLanes.SPECIES.vectorBitSize();
  }

  /** {@code C = alpha * op(A) * op(B) + beta * C} on segments, with the default parallelism. */
  public static void sgemm(Transpose transA, Transpose transB, int m, int n, int k,
      float alpha, MemorySegment a, long aOffset, int lda,
      MemorySegment b, long bOffset, int ldb,
      float beta, MemorySegment c, long cOffset, int ldc) {
    sgemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc,
        Parallelism.getDefault());
  }

  /** {@code C = alpha * op(A) * op(B) + beta * C} on segments, on up to {@code parallelism} threads. */
  public static void sgemm(Transpose transA, Transpose transB, int m, int n, int k,
      float alpha, MemorySegment a, long aOffset, int lda,
      MemorySegment b, long bOffset, int ldb,
      float beta, MemorySegment c, long cOffset, int ldc, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    validateShape(transA, transB, m, n, k, lda, ldb, ldc);
    Checks.readable(a, "a");
    Checks.readable(b, "b");
    Checks.writable(c, "c");
    validateExtents(transA, transB, m, n, k, aOffset, lda, Checks.floats(a), bOffset, ldb, Checks.floats(b),
        cOffset, ldc, Checks.floats(c));
    multiply(transA == Transpose.TRANSPOSE, transB == Transpose.TRANSPOSE, m, n, k,
        alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc, parallelism);
  }

  /** {@code C = alpha * op(A) * op(B) + beta * C} on arrays, with the default parallelism. */
  public static void sgemm(Transpose transA, Transpose transB, int m, int n, int k,
      float alpha, float[] a, int aOffset, int lda,
      float[] b, int bOffset, int ldb,
      float beta, float[] c, int cOffset, int ldc) {
    sgemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc,
        Parallelism.getDefault());
  }

  /** {@code C = alpha * op(A) * op(B) + beta * C} on arrays, on up to {@code parallelism} threads. */
  public static void sgemm(Transpose transA, Transpose transB, int m, int n, int k,
      float alpha, float[] a, int aOffset, int lda,
      float[] b, int bOffset, int ldb,
      float beta, float[] c, int cOffset, int ldc, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    validateShape(transA, transB, m, n, k, lda, ldb, ldc);
    Checks.notNull(a, "a");
    Checks.notNull(b, "b");
    Checks.notNull(c, "c");
    validateExtents(transA, transB, m, n, k, aOffset, lda, a.length, bOffset, ldb, b.length,
        cOffset, ldc, c.length);
    multiply(transA == Transpose.TRANSPOSE, transB == Transpose.TRANSPOSE, m, n, k,
        alpha, MemorySegment.ofArray(a), aOffset, lda, MemorySegment.ofArray(b), bOffset, ldb,
        beta, MemorySegment.ofArray(c), cOffset, ldc, parallelism);
  }

  /**
   * {@code C = alpha * op(A) * B + beta * C} with B packed ahead ({@link PackedB}): n and k are
   * those of the operand packed last. The result is bitwise that of {@link #sgemm} with the
   * unpacked B.
   */
  public static void sgemm(Transpose transA, int m, float alpha, MemorySegment a, long aOffset, int lda,
      PackedB b, float beta, MemorySegment c, long cOffset, int ldc, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    Checks.notNull(b, "b");
    if (b.k() < 0) {
      throw new IllegalArgumentException("b: this PackedB holds no operand yet; call pack first");
    }
    int n = b.n();
    int k = b.k();
    validateShape(transA, Transpose.NONE, m, n, k, lda, Math.max(1, n), ldc);
    Checks.readable(a, "a");
    Checks.writable(c, "c");
    boolean ta = transA == Transpose.TRANSPOSE;
    Checks.extent("a", aOffset, ta ? k : m, ta ? m : k, lda, Checks.floats(a));
    Checks.extent("c", cOffset, m, n, ldc, Checks.floats(c));
    multiplyPacked(ta, m, alpha, a, aOffset, lda, b, beta, c, cOffset, ldc, parallelism);
  }

  /** {@link #sgemm(Transpose, int, float, MemorySegment, long, int, PackedB, float, MemorySegment, long, int, Parallelism)} with the default parallelism. */
  public static void sgemm(Transpose transA, int m, float alpha, MemorySegment a, long aOffset, int lda,
      PackedB b, float beta, MemorySegment c, long cOffset, int ldc) {
    sgemm(transA, m, alpha, a, aOffset, lda, b, beta, c, cOffset, ldc, Parallelism.getDefault());
  }

  private static void validateShape(Transpose transA, Transpose transB, int m, int n, int k,
      int lda, int ldb, int ldc) {
    Checks.notNull(transA, "transA");
    Checks.notNull(transB, "transB");
    Checks.nonNegative(m, "m");
    Checks.nonNegative(n, "n");
    Checks.nonNegative(k, "k");
    if (transA == Transpose.NONE) {
      Checks.leadingDimension(lda, "lda", k, "A (transA = NONE) is stored m x k =", m);
    } else {
      Checks.leadingDimension(lda, "lda", m, "A (transA = TRANSPOSE) is stored k x m =", k);
    }
    if (transB == Transpose.NONE) {
      Checks.leadingDimension(ldb, "ldb", n, "B (transB = NONE) is stored k x n =", k);
    } else {
      Checks.leadingDimension(ldb, "ldb", k, "B (transB = TRANSPOSE) is stored n x k =", n);
    }
    Checks.leadingDimension(ldc, "ldc", n, "C is m x n =", m);
  }

  private static void validateExtents(Transpose transA, Transpose transB, int m, int n, int k,
      long aOffset, int lda, long aLength, long bOffset, int ldb, long bLength,
      long cOffset, int ldc, long cLength) {
    boolean ta = transA == Transpose.TRANSPOSE;
    boolean tb = transB == Transpose.TRANSPOSE;
    Checks.extent("a", aOffset, ta ? k : m, ta ? m : k, lda, aLength);
    Checks.extent("b", bOffset, tb ? n : k, tb ? k : n, ldb, bLength);
    Checks.extent("c", cOffset, m, n, ldc, cLength);
  }

  /**
   * The multiply itself, for callers that have validated every argument already (the public
   * entry points above, and kernels built on GEMM such as {@link Conv2d}).
   */
  static void multiply(boolean transA, boolean transB, int m, int n, int k,
      float alpha, MemorySegment a, long aOffset, int lda,
      MemorySegment b, long bOffset, int ldb,
      float beta, MemorySegment c, long cOffset, int ldc, Parallelism parallelism) {
    if (m == 0 || n == 0) {
      return;
    }
    GemmTask task = GemmTask.forCurrentThread();
    task.set(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
    run(task, parallelism, Checks.shareable(a) && Checks.shareable(b) && Checks.shareable(c));
  }

  /** {@link #multiply} with op(B) packed ahead; for callers that validated every argument. */
  static void multiplyPacked(boolean transA, int m, float alpha, MemorySegment a, long aOffset, int lda,
      PackedB b, float beta, MemorySegment c, long cOffset, int ldc, Parallelism parallelism) {
    if (m == 0 || b.n() == 0) {
      return;
    }
    GemmTask task = GemmTask.forCurrentThread();
    task.setPacked(transA, m, b.n(), b.k(), alpha, a, aOffset, lda, b.data(), beta, c, cOffset, ldc);
    run(task, parallelism, Checks.shareable(a) && Checks.shareable(c));
  }

  private static void run(GemmTask task, Parallelism parallelism, boolean shareable) {
    try {
      int parts = (int) Math.min(parallelism.threads(),
          Math.min(task.maxParts(), Math.max(1L, task.flops() / MIN_FLOPS_PER_THREAD)));
      if (!shareable) {
        parts = 1;
      } else if (parts == 1) {
        int cheapParts = (int) Math.min(parallelism.threads(),
            Math.min(task.maxParts(), task.flops() / MIN_FLOPS_PER_SPINNING_THREAD));
        if (cheapParts > 1) {
          if (parallelism.workersSpinning(cheapParts)) {
            parts = cheapParts;
          } else {
            parallelism.warmUp(cheapParts);
          }
        }
      }
      task.prepare(parts);
      parallelism.invoke(task, parts);
    } finally {
      task.clear();
    }
  }
}
