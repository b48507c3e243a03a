package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The 12 x 2 micro-kernels of {@link GemmMicroKernel} for small products that skip packing
 * ({@code GemmTask.direct}): A comes from a plain copy of its rows, at the caller's row pitch, and B
 * straight from the caller's segment, one k row of the tile per {@code bPitch} bytes.
 *
 * <p>Why: at 64^3 the packed path spent a fifth of the call packing. Packing A copies each 64-float
 * row on its own into a panel row at the fixed KC pitch, and at four vectors per row the loop
 * overhead, not the data, set the pace: 750-900 ns for the 16 KiB of A, against 80-200 ns for one
 * bulk copy of the same rows. Here the A rows are copied in one piece, so the kernel has to take
 * the row pitch as a variable instead of folding the constant KC into each broadcast's address,
 * and B's rows are read where they are. Kernel and store alone, 5 x 2 full tiles at k = 64 over and
 * over in one JVM: 259-262 ns a tile for the packed kernel, 262-267 for this one. In the disassembly
 * its loop has about 68 instructions per k step against the packed kernel's 48 (address arithmetic
 * per broadcast, 7 of the 12 row offsets kept on the stack, a bounds check per B load), which the
 * FMA-bound loop mostly hides; the README has what was tried against it.
 *
 * <p>A stays a heap array for the same reason as in the packed kernel: C2 drops the bounds checks
 * of its int-indexed broadcasts, and kept them on scalar segment reads. The two B loads per k step
 * are vector loads from the segment; their checks cost nothing measurable here. B is always a
 * native segment here (heap operands go the packed way, see GemmTask.unpacked): copying B into
 * an array as well, so that the loop touched no segment, made the pure-native case 10-30% slower.
 *
 * <p>Each output element gets the same FMA chain as in {@link GemmMicroKernel} (zero, then k
 * steps in order) and the same merge into C ({@link GemmMicroKernel#store}), so a product gets
 * the same bits whichever way it goes.
 */
final class GemmDirectKernel {
  private static final VectorSpecies<Float> SPECIES = GemmMicroKernel.SPECIES;
  private static final int LANES = GemmMicroKernel.LANES;
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private GemmDirectKernel() {}

  /**
   * Computes the tile {@code T = A * B} of {@code mr <= 12} rows over {@code kc} steps and merges its
   * top-left {@code mr x nr} corner into C as {@link GemmMicroKernel#store} does. Row i of A is
   * {@code ap[apOff + i*pitch ..]}; k row p of B is the two vectors at byte {@code bpOff + p*bPitch}
   * of {@code bp}. Rows of A past {@code mr} are read (up to the next multiple of 4) but their
   * results are dropped, so they may hold anything.
   */
  static void computeAndStore(int kc, float[] ap, int apOff, int pitch, MemorySegment bp, long bpOff, long bPitch,
      float[] tile, MemorySegment c, long cAt, long ldcBytes, int mr, int nr, float alpha, float beta) {
    if (mr > 8) {
      compute12(kc, ap, apOff, pitch, bp, bpOff, bPitch, tile);
    } else if (mr > 4) {
      compute8(kc, ap, apOff, pitch, bp, bpOff, bPitch, tile);
    } else {
      compute4(kc, ap, apOff, pitch, bp, bpOff, bPitch, tile);
    }
    GemmMicroKernel.store(tile, c, cAt, ldcBytes, mr, nr, alpha, beta);
  }

  private static void compute12(int kc, float[] ap, int apOff, int pitch, MemorySegment bp, long bpOff, long bPitch,
      float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    FloatVector c4_0 = FloatVector.zero(SPECIES), c4_1 = FloatVector.zero(SPECIES);
    FloatVector c5_0 = FloatVector.zero(SPECIES), c5_1 = FloatVector.zero(SPECIES);
    FloatVector c6_0 = FloatVector.zero(SPECIES), c6_1 = FloatVector.zero(SPECIES);
    FloatVector c7_0 = FloatVector.zero(SPECIES), c7_1 = FloatVector.zero(SPECIES);
    FloatVector c8_0 = FloatVector.zero(SPECIES), c8_1 = FloatVector.zero(SPECIES);
    FloatVector c9_0 = FloatVector.zero(SPECIES), c9_1 = FloatVector.zero(SPECIES);
    FloatVector c10_0 = FloatVector.zero(SPECIES), c10_1 = FloatVector.zero(SPECIES);
    FloatVector c11_0 = FloatVector.zero(SPECIES), c11_1 = FloatVector.zero(SPECIES);
    for (int p = 0; p < kc; p++) {
      int ao = apOff + p;
      long bo = bpOff + p * bPitch;
      FloatVector b0 = FloatVector.fromMemorySegment(SPECIES, bp, bo, ORDER);
      FloatVector b1 = FloatVector.fromMemorySegment(SPECIES, bp, bo + 4L * LANES, ORDER);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[ao]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 4 * pitch]);
      c4_0 = a.fma(b0, c4_0); c4_1 = a.fma(b1, c4_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 5 * pitch]);
      c5_0 = a.fma(b0, c5_0); c5_1 = a.fma(b1, c5_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 6 * pitch]);
      c6_0 = a.fma(b0, c6_0); c6_1 = a.fma(b1, c6_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 7 * pitch]);
      c7_0 = a.fma(b0, c7_0); c7_1 = a.fma(b1, c7_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 8 * pitch]);
      c8_0 = a.fma(b0, c8_0); c8_1 = a.fma(b1, c8_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 9 * pitch]);
      c9_0 = a.fma(b0, c9_0); c9_1 = a.fma(b1, c9_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 10 * pitch]);
      c10_0 = a.fma(b0, c10_0); c10_1 = a.fma(b1, c10_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 11 * pitch]);
      c11_0 = a.fma(b0, c11_0); c11_1 = a.fma(b1, c11_1);
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
    c4_0.intoArray(tile, 8 * LANES); c4_1.intoArray(tile, 9 * LANES);
    c5_0.intoArray(tile, 10 * LANES); c5_1.intoArray(tile, 11 * LANES);
    c6_0.intoArray(tile, 12 * LANES); c6_1.intoArray(tile, 13 * LANES);
    c7_0.intoArray(tile, 14 * LANES); c7_1.intoArray(tile, 15 * LANES);
    c8_0.intoArray(tile, 16 * LANES); c8_1.intoArray(tile, 17 * LANES);
    c9_0.intoArray(tile, 18 * LANES); c9_1.intoArray(tile, 19 * LANES);
    c10_0.intoArray(tile, 20 * LANES); c10_1.intoArray(tile, 21 * LANES);
    c11_0.intoArray(tile, 22 * LANES); c11_1.intoArray(tile, 23 * LANES);
  }
  private static void compute8(int kc, float[] ap, int apOff, int pitch, MemorySegment bp, long bpOff, long bPitch,
      float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    FloatVector c4_0 = FloatVector.zero(SPECIES), c4_1 = FloatVector.zero(SPECIES);
    FloatVector c5_0 = FloatVector.zero(SPECIES), c5_1 = FloatVector.zero(SPECIES);
    FloatVector c6_0 = FloatVector.zero(SPECIES), c6_1 = FloatVector.zero(SPECIES);
    FloatVector c7_0 = FloatVector.zero(SPECIES), c7_1 = FloatVector.zero(SPECIES);
    for (int p = 0; p < kc; p++) {
      int ao = apOff + p;
      long bo = bpOff + p * bPitch;
      FloatVector b0 = FloatVector.fromMemorySegment(SPECIES, bp, bo, ORDER);
      FloatVector b1 = FloatVector.fromMemorySegment(SPECIES, bp, bo + 4L * LANES, ORDER);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[ao]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 4 * pitch]);
      c4_0 = a.fma(b0, c4_0); c4_1 = a.fma(b1, c4_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 5 * pitch]);
      c5_0 = a.fma(b0, c5_0); c5_1 = a.fma(b1, c5_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 6 * pitch]);
      c6_0 = a.fma(b0, c6_0); c6_1 = a.fma(b1, c6_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 7 * pitch]);
      c7_0 = a.fma(b0, c7_0); c7_1 = a.fma(b1, c7_1);
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
    c4_0.intoArray(tile, 8 * LANES); c4_1.intoArray(tile, 9 * LANES);
    c5_0.intoArray(tile, 10 * LANES); c5_1.intoArray(tile, 11 * LANES);
    c6_0.intoArray(tile, 12 * LANES); c6_1.intoArray(tile, 13 * LANES);
    c7_0.intoArray(tile, 14 * LANES); c7_1.intoArray(tile, 15 * LANES);
  }
  private static void compute4(int kc, float[] ap, int apOff, int pitch, MemorySegment bp, long bpOff, long bPitch,
      float[] tile) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    for (int p = 0; p < kc; p++) {
      int ao = apOff + p;
      long bo = bpOff + p * bPitch;
      FloatVector b0 = FloatVector.fromMemorySegment(SPECIES, bp, bo, ORDER);
      FloatVector b1 = FloatVector.fromMemorySegment(SPECIES, bp, bo + 4L * LANES, ORDER);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[ao]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[ao + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
    }
    c0_0.intoArray(tile, 0 * LANES); c0_1.intoArray(tile, 1 * LANES);
    c1_0.intoArray(tile, 2 * LANES); c1_1.intoArray(tile, 3 * LANES);
    c2_0.intoArray(tile, 4 * LANES); c2_1.intoArray(tile, 5 * LANES);
    c3_0.intoArray(tile, 6 * LANES); c3_1.intoArray(tile, 7 * LANES);
  }}
