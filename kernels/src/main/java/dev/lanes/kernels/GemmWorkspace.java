package dev.lanes.kernels;

/**
 * One thread's packing buffers, allocated once and reused by every call on that thread, so a GEMM
 * in steady state allocates nothing. They are heap arrays, not segments: the micro-kernel's loads
 * from int-indexed arrays lose their bounds checks to C2's range-check elimination (see
 * {@link GemmMicroKernel}). They go away with the thread.
 */
final class GemmWorkspace {
  private static final ThreadLocal<GemmWorkspace> PER_THREAD = ThreadLocal.withInitial(GemmWorkspace::new);

  /** One packed MR x KC micro-panel of A, row i at {@code i * KC}. */
  final float[] aPanel;
  /**
   * A group of packed A micro-panels, for transposed A ({@link GemmBlocking#TRANSPOSED_A_GROUP}
   * panels).
   */
  final float[] aGroup;
  /** One packed KC x NC block of B, as NC/NR micro-panels. */
  final float[] bBlock;
  /** Columns of Bᵀ on their way to being transposed into a panel. */
  final float[] transposeScratch;
  /** Gather pattern for the transposed packing of B panels. */
  final GemmPacking.TransposeMap bMap = new GemmPacking.TransposeMap();
  /** One MR x NR tile of A*B on its way from the micro-kernel's registers to C. */
  final float[] tile;

  private GemmWorkspace() {
    int mr = GemmMicroKernel.MR;
    int nr = GemmMicroKernel.NR;
    int kc = GemmBlocking.KC;
    int ncPadded = (GemmBlocking.NC + nr - 1) / nr * nr;
    aPanel = new float[GemmPacking.panelFloats()];
    aGroup = new float[GemmBlocking.TRANSPOSED_A_GROUP * GemmPacking.panelFloats()];
    bBlock = new float[kc * ncPadded];
    tile = new float[mr * nr];
    transposeScratch = new float[nr * kc];
  }

  static GemmWorkspace forCurrentThread() {
    return PER_THREAD.get();
  }
}
