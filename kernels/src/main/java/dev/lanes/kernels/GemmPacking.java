package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Packs blocks of op(A) and op(B) into the contiguous panels the micro-kernel streams.
 *
 * <p>A is packed one MR-row micro-panel at a time, k-major: {@code Ap[p*MR + i] = op(A)[i][p]},
 * so one k step of the kernel reads MR consecutive floats. B is packed as a block of NR-column
 * micro-panels, each k-major: {@code Bp[panel][p*NR + j] = op(B)[p][j]}. Rows or columns past the
 * edge of the matrix are packed as zeros, so the kernel always computes full tiles and only the
 * store is cut to size.
 */
final class GemmPacking {
  private static final VectorSpecies<Float> SPECIES = GemmMicroKernel.SPECIES;
  private static final int LANES = GemmMicroKernel.LANES;
  private static final int MR = GemmMicroKernel.MR;
  private static final int NR = GemmMicroKernel.NR;
  private static final int NV = GemmMicroKernel.NV;
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private GemmPacking() {}

  /**
   * Packs op(A)[i0 .. i0+mr) x [p0 .. p0+kc) into {@code dst} (MR*kc floats), zero rows below mr.
   * {@code aOff} is the byte offset of A's element (0, 0); {@code ldaBytes} its row pitch.
   */
  static void packA(boolean transposed, MemorySegment a, long aOff, long ldaBytes, int i0, int mr,
      int p0, int kc, float[] dst) {
    if (!transposed) {
      // A is m x k row-major: each row of the panel is contiguous in A, strided in the panel.
      for (int i = 0; i < mr; i++) {
        long src = aOff + (i0 + i) * ldaBytes + 4L * p0;
        for (int p = 0; p < kc; p++) {
          dst[p * MR + i] = a.get(JAVA_FLOAT_UNALIGNED, src + 4L * p);
        }
      }
    } else {
      // A is stored k x m: each k step of the panel is a contiguous run of mr floats in A.
      for (int p = 0; p < kc; p++) {
        long src = aOff + (p0 + p) * ldaBytes + 4L * i0;
        for (int i = 0; i < mr; i++) {
          dst[p * MR + i] = a.get(JAVA_FLOAT_UNALIGNED, src + 4L * i);
        }
      }
    }
    if (mr < MR) {
      for (int p = 0; p < kc; p++) {
        for (int i = mr; i < MR; i++) {
          dst[p * MR + i] = 0f;
        }
      }
    }
  }

  /**
   * Packs op(B)[p0 .. p0+kc) x [j0 .. j0+nc) into ceil(nc/NR) micro-panels of kc*NR floats each,
   * zero columns past nc. {@code bOff} is the byte offset of B's element (0, 0).
   */
  static void packB(boolean transposed, MemorySegment b, long bOff, long ldbBytes, int p0, int kc,
      int j0, int nc, float[] dst) {
    int panelFloats = kc * NR;
    for (int jp = 0, panel = 0; jp < nc; jp += NR, panel++) {
      int cols = Math.min(NR, nc - jp);
      int to = panel * panelFloats;
      if (!transposed) {
        packRowsB(b, bOff + 4L * (j0 + jp), ldbBytes, p0, kc, cols, dst, to);
      } else {
        // B is stored n x k: column j of the panel is a contiguous run along k in B.
        for (int j = 0; j < cols; j++) {
          long src = bOff + (j0 + jp + j) * ldbBytes + 4L * p0;
          for (int p = 0; p < kc; p++) {
            dst[to + p * NR + j] = b.get(JAVA_FLOAT_UNALIGNED, src + 4L * p);
          }
        }
        for (int p = 0; p < kc; p++) {
          for (int j = cols; j < NR; j++) {
            dst[to + p * NR + j] = 0f;
          }
        }
      }
    }
  }

  /** B is k x n row-major: each k step of a panel is a contiguous run of NR (or fewer) floats. */
  private static void packRowsB(MemorySegment b, long colOff, long ldbBytes, int p0, int kc, int cols,
      float[] dst, int to) {
    if (cols == NR) {
      for (int p = 0; p < kc; p++) {
        long src = colOff + (p0 + p) * ldbBytes;
        int d = to + p * NR;
        for (int v = 0; v < NV; v++) {
          FloatVector.fromMemorySegment(SPECIES, b, src + v * (LANES * 4L), ORDER)
              .intoArray(dst, d + v * LANES);
        }
      }
    } else {
      for (int p = 0; p < kc; p++) {
        long src = colOff + (p0 + p) * ldbBytes;
        int d = to + p * NR;
        for (int v = 0; v < NV; v++) {
          VectorMask<Float> valid = SPECIES.indexInRange(v * LANES, cols);
          FloatVector.fromMemorySegment(SPECIES, b, src + v * (LANES * 4L), ORDER, valid)
              .intoArray(dst, d + v * LANES);
        }
      }
    }
  }
}
