package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The micro-kernels of the unpacked path for small products ({@code GemmTask.direct}): tiles of
 * {@link #ROWS} rows of C by four vectors (4 x 64 floats at 512 bits), with A's rows from a plain
 * copy at the caller's row pitch and B's rows straight from the caller's segment.
 *
 * <p>Why 4 x 64 here when the packed path uses 12 x 32: per k step this tile broadcasts 4 floats
 * and loads 4 vectors for 16 FMAs, and the kernel is small enough to hold its own 16 stores, so a
 * full tile of a plain product ({@code C = A*B}) goes from the registers to C without a round trip
 * through a tile buffer. (Scaling by alpha and adding beta*C stay in {@link #merge}.) Measured at 64^3, one thread, the tiles alone (A copies included) in one
 * JVM beside OpenBLAS's whole call: 2.37 us with this kernel against 2.66 us with the 12 x 32 one,
 * OpenBLAS 2.29-2.30 us. The kernel stays small enough for C1 (its 16 accumulators, 4 B vectors and
 * 16 stores compile at tier 3, checked with {@code -XX:+PrintCompilation}), which matters: see
 * {@link GemmMicroKernel#computeAndStore} for what happens to a kernel C1 gives up on.
 *
 * <p>A is a heap array for the same reason as in the packed kernel: C2 drops the bounds checks of
 * its int-indexed broadcasts, and kept them on scalar segment reads. B is always a native segment
 * here (heap operands go the packed way, see GemmTask.unpacked), and so is every {@code out} the
 * kernels store to: C itself when it is native, else this thread's tile ({@code GemmWorkspace.directTile}).
 *
 * <p>Each output element gets the same FMA chain as in {@link GemmMicroKernel} (zero, then k
 * steps in order) and the same merge into C ({@link #merge} does what {@link GemmMicroKernel#store}
 * does), so a product gets the same bits whichever way it goes. Storing the accumulators straight
 * into C is that merge when alpha is 1 and beta is 0: {@code t * 1} is {@code t}.
 */
final class GemmDirectKernel {
  private static final VectorSpecies<Float> SPECIES = GemmMicroKernel.SPECIES;
  private static final int LANES = GemmMicroKernel.LANES;
  private static final long VECTOR_BYTES = (long) LANES * Float.BYTES;
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  /** Rows of C per tile. */
  static final int ROWS = 4;
  /** Columns of C per tile of {@link #wide}. */
  static final int WIDE = 4 * LANES;
  /**
   * Columns of C per tile of {@link #narrow}: one NR-wide packed B panel (the unpacked path runs
   * only at 512 bits, where NR is two vectors).
   */
  static final int NARROW = 2 * LANES;

  private GemmDirectKernel() {}

  /**
   * Writes the tile {@code T = A * B} of {@link #ROWS} x {@link #WIDE} floats over {@code kc} steps
   * to {@code out}, row i at byte {@code outAt + i*outPitch}. Row i of A is {@code ap[i*pitch ..]};
   * k row p of B is the four vectors at byte {@code bAt + p*bPitch} of {@code b}. All four rows of A
   * are read: for a tile of fewer rows, the rows past them hold whatever the buffer held, and their
   * results are dropped by {@link #merge}.
   */
  static void wide(int kc, float[] ap, int pitch, MemorySegment b, long bAt, long bPitch,
      MemorySegment out, long outAt, long outPitch) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c0_2 = FloatVector.zero(SPECIES), c0_3 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c1_2 = FloatVector.zero(SPECIES), c1_3 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c2_2 = FloatVector.zero(SPECIES), c2_3 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    FloatVector c3_2 = FloatVector.zero(SPECIES), c3_3 = FloatVector.zero(SPECIES);
    for (int p = 0; p < kc; p++) {
      long bo = bAt + p * bPitch;
      FloatVector b0 = FloatVector.fromMemorySegment(SPECIES, b, bo, ORDER);
      FloatVector b1 = FloatVector.fromMemorySegment(SPECIES, b, bo + VECTOR_BYTES, ORDER);
      FloatVector b2 = FloatVector.fromMemorySegment(SPECIES, b, bo + 2 * VECTOR_BYTES, ORDER);
      FloatVector b3 = FloatVector.fromMemorySegment(SPECIES, b, bo + 3 * VECTOR_BYTES, ORDER);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[p]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1); c0_2 = a.fma(b2, c0_2); c0_3 = a.fma(b3, c0_3);
      a = FloatVector.broadcast(SPECIES, ap[p + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1); c1_2 = a.fma(b2, c1_2); c1_3 = a.fma(b3, c1_3);
      a = FloatVector.broadcast(SPECIES, ap[p + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1); c2_2 = a.fma(b2, c2_2); c2_3 = a.fma(b3, c2_3);
      a = FloatVector.broadcast(SPECIES, ap[p + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1); c3_2 = a.fma(b2, c3_2); c3_3 = a.fma(b3, c3_3);
    }
    c0_0.intoMemorySegment(out, outAt, ORDER);
    c0_1.intoMemorySegment(out, outAt + VECTOR_BYTES, ORDER);
    c0_2.intoMemorySegment(out, outAt + 2 * VECTOR_BYTES, ORDER);
    c0_3.intoMemorySegment(out, outAt + 3 * VECTOR_BYTES, ORDER);
    c1_0.intoMemorySegment(out, outAt + 1 * outPitch, ORDER);
    c1_1.intoMemorySegment(out, outAt + 1 * outPitch + VECTOR_BYTES, ORDER);
    c1_2.intoMemorySegment(out, outAt + 1 * outPitch + 2 * VECTOR_BYTES, ORDER);
    c1_3.intoMemorySegment(out, outAt + 1 * outPitch + 3 * VECTOR_BYTES, ORDER);
    c2_0.intoMemorySegment(out, outAt + 2 * outPitch, ORDER);
    c2_1.intoMemorySegment(out, outAt + 2 * outPitch + VECTOR_BYTES, ORDER);
    c2_2.intoMemorySegment(out, outAt + 2 * outPitch + 2 * VECTOR_BYTES, ORDER);
    c2_3.intoMemorySegment(out, outAt + 2 * outPitch + 3 * VECTOR_BYTES, ORDER);
    c3_0.intoMemorySegment(out, outAt + 3 * outPitch, ORDER);
    c3_1.intoMemorySegment(out, outAt + 3 * outPitch + VECTOR_BYTES, ORDER);
    c3_2.intoMemorySegment(out, outAt + 3 * outPitch + 2 * VECTOR_BYTES, ORDER);
    c3_3.intoMemorySegment(out, outAt + 3 * outPitch + 3 * VECTOR_BYTES, ORDER);
  }

  /** {@link #wide} for a tile of {@link #NARROW} columns: two vectors of B per k step. */
  static void narrow(int kc, float[] ap, int pitch, MemorySegment b, long bAt, long bPitch,
      MemorySegment out, long outAt, long outPitch) {
    FloatVector c0_0 = FloatVector.zero(SPECIES), c0_1 = FloatVector.zero(SPECIES);
    FloatVector c1_0 = FloatVector.zero(SPECIES), c1_1 = FloatVector.zero(SPECIES);
    FloatVector c2_0 = FloatVector.zero(SPECIES), c2_1 = FloatVector.zero(SPECIES);
    FloatVector c3_0 = FloatVector.zero(SPECIES), c3_1 = FloatVector.zero(SPECIES);
    for (int p = 0; p < kc; p++) {
      long bo = bAt + p * bPitch;
      FloatVector b0 = FloatVector.fromMemorySegment(SPECIES, b, bo, ORDER);
      FloatVector b1 = FloatVector.fromMemorySegment(SPECIES, b, bo + VECTOR_BYTES, ORDER);
      FloatVector a;
      a = FloatVector.broadcast(SPECIES, ap[p]);
      c0_0 = a.fma(b0, c0_0); c0_1 = a.fma(b1, c0_1);
      a = FloatVector.broadcast(SPECIES, ap[p + 1 * pitch]);
      c1_0 = a.fma(b0, c1_0); c1_1 = a.fma(b1, c1_1);
      a = FloatVector.broadcast(SPECIES, ap[p + 2 * pitch]);
      c2_0 = a.fma(b0, c2_0); c2_1 = a.fma(b1, c2_1);
      a = FloatVector.broadcast(SPECIES, ap[p + 3 * pitch]);
      c3_0 = a.fma(b0, c3_0); c3_1 = a.fma(b1, c3_1);
    }
    c0_0.intoMemorySegment(out, outAt, ORDER);
    c0_1.intoMemorySegment(out, outAt + VECTOR_BYTES, ORDER);
    c1_0.intoMemorySegment(out, outAt + 1 * outPitch, ORDER);
    c1_1.intoMemorySegment(out, outAt + 1 * outPitch + VECTOR_BYTES, ORDER);
    c2_0.intoMemorySegment(out, outAt + 2 * outPitch, ORDER);
    c2_1.intoMemorySegment(out, outAt + 2 * outPitch + VECTOR_BYTES, ORDER);
    c3_0.intoMemorySegment(out, outAt + 3 * outPitch, ORDER);
    c3_1.intoMemorySegment(out, outAt + 3 * outPitch + VECTOR_BYTES, ORDER);
  }

  /**
   * Merges the top-left {@code rows x cols} corner of a tile written by the kernels to {@code tile}
   * (row i at byte {@code i*tilePitch}) into C, element by element as {@link GemmMicroKernel#store}
   * does: {@code alpha*t} where beta is 0 (C is not read), else {@code fma(t, alpha, beta*C)}.
   * A copy of that method's edge loop rather than a call to it, because that one reads its tile from
   * an array: a tile in an array here would mean a second set of stores in the kernels (array and
   * segment), and a heap segment over the array would put heap segments beside native ones in the
   * kernels' stores (see GemmTask.unpacked for what that mix costs).
   */
  static void merge(MemorySegment tile, long tilePitch, MemorySegment c, long cAt, long ldcBytes, int rows, int cols,
      float alpha, float beta) {
    FloatVector va = FloatVector.broadcast(SPECIES, alpha);
    FloatVector vb = FloatVector.broadcast(SPECIES, beta);
    for (int i = 0; i < rows; i++) {
      long row = cAt + i * ldcBytes;
      for (int col = 0; col < cols; col += LANES) {
        long at = row + col * 4L;
        FloatVector t = FloatVector.fromMemorySegment(SPECIES, tile, i * tilePitch + col * 4L, ORDER);
        if (col + LANES <= cols) {
          FloatVector r = beta == 0f ? t.mul(va)
              : t.fma(va, FloatVector.fromMemorySegment(SPECIES, c, at, ORDER).mul(vb));
          r.intoMemorySegment(c, at, ORDER);
        } else {
          VectorMask<Float> valid = SPECIES.indexInRange(col, cols);
          FloatVector r = beta == 0f ? t.mul(va)
              : t.fma(va, FloatVector.fromMemorySegment(SPECIES, c, at, ORDER, valid).mul(vb));
          r.intoMemorySegment(c, at, ORDER, valid);
        }
      }
    }
  }
}
