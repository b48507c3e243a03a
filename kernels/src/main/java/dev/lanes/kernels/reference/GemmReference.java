package dev.lanes.kernels.reference;

/**
 * The double-precision reference for {@link dev.lanes.kernels.Gemm}: the textbook triple loop,
 * with the same row-major layout, offsets and leading dimensions.
 */
public final class GemmReference {
  private GemmReference() {}

  /**
   * Returns {@code alpha * op(A) * op(B) + beta * C} as an m x n row-major {@code double[]}
   * (leading dimension n), every product and sum in double. As in BLAS, {@code beta == 0} means C
   * is not read, and {@code k == 0} or {@code alpha == 0} means A and B are not read.
   */
  public static double[] sgemm(boolean transA, boolean transB, int m, int n, int k,
      double alpha, float[] a, int aOffset, int lda,
      float[] b, int bOffset, int ldb,
      double beta, float[] c, int cOffset, int ldc) {
    double[] result = new double[m * n];
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double sum = 0;
        if (alpha != 0) {
          for (int p = 0; p < k; p++) {
            double aip = transA ? a[aOffset + p * lda + i] : a[aOffset + i * lda + p];
            double bpj = transB ? b[bOffset + j * ldb + p] : b[bOffset + p * ldb + j];
            sum += aip * bpj;
          }
        }
        double old = beta == 0 ? 0 : beta * c[cOffset + i * ldc + j];
        result[i * n + j] = alpha * sum + old;
      }
    }
    return result;
  }
}
