package dev.lanes.kernels;

/** Whether a GEMM operand is used as stored ({@link #NONE}) or transposed ({@link #TRANSPOSE}). */
public enum Transpose {
  /** op(X) = X. */
  NONE,
  /** op(X) = Xᵀ. */
  TRANSPOSE
}
