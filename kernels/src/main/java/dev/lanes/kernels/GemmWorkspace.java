package dev.lanes.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * One thread's packing buffers, allocated once and reused by every call on that thread, so a GEMM
 * in steady state allocates nothing. They are heap arrays, not segments: the micro-kernel's loads
 * from int-indexed arrays lose their bounds checks to C2's range-check elimination (see
 * {@link GemmMicroKernel}). They go away with the thread.
 */
final class GemmWorkspace {
  private static final ThreadLocal<GemmWorkspace> PER_THREAD = ThreadLocal.withInitial(GemmWorkspace::new);

  /**
   * One packed MC x KC block of A: MC/MR micro-panels, row r of the block at {@code r * KC}
   * ({@link GemmPacking#packA}).
   */
  final float[] aBlock;
  /** One packed KC x NC block of B, as NC/NR micro-panels. */
  final float[] bBlock;
  /**
   * The unpacked path's last columns when they are fewer than a wide tile ({@link GemmDirectKernel}):
   * up to two NR-wide panels, packed with zeros past the edge, then copied here. Native like the
   * caller's B, so that the kernel's loads of B only ever see native segments (see GemmTask.unpacked).
   */
  final MemorySegment bEdge;
  /**
   * The unpacked path's tile on its way to C when the kernel does not store it there itself. Native,
   * so that the kernel's stores, like its loads, only ever see native segments.
   */
  final MemorySegment directTile;
  /** Columns of Bᵀ on their way to being transposed into a panel. */
  final float[] transposeScratch;
  /** Gather pattern for the transposed packing of B panels. */
  final GemmPacking.TransposeMap bMap = new GemmPacking.TransposeMap();
  /**
   * Where the current stage's KC x NC block of op(B) lives ({@code GemmTask.stageB}): the array
   * ({@link #bBlock}, or a block packed ahead), its first panel's index, and the floats from one
   * NR-column panel to the next. Fields rather than a returned object, so that a stage allocates
   * nothing.
   */
  float[] stageB;
  int stageBFirst;
  int stageBStride;
  /** One MR x NR tile of A*B on its way from the micro-kernel's registers to C (the 12-row kernel, and edge tiles). */
  final float[] tile;

  private GemmWorkspace() {
    int mr = GemmMicroKernel.MR;
    int nr = GemmMicroKernel.NR;
    int kc = GemmBlocking.KC;
    int ncPadded = (GemmBlocking.NC + nr - 1) / nr * nr;
    aBlock = new float[GemmBlocking.MC / mr * GemmPacking.panelFloats()];
    bBlock = new float[kc * ncPadded];
    bEdge = Arena.ofAuto().allocate(2L * kc * nr * Float.BYTES, 64);
    directTile = Arena.ofAuto().allocate((long) GemmDirectKernel.ROWS * GemmDirectKernel.WIDE * Float.BYTES, 64);
    tile = new float[mr * nr];
    transposeScratch = new float[nr * kc];
  }

  static GemmWorkspace forCurrentThread() {
    return PER_THREAD.get();
  }
}
