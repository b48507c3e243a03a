package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
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
 *
 * <p>Both operands reduce to the same two shapes of source, so there are two routines:
 * <ul>
 *   <li>{@link #packRuns}: each k step of the panel is a contiguous run in the source (op(B) = B;
 *       op(A) = Aᵀ goes through {@link #packTransposedGroup}). One vector copy per run, masked for a
 *       partial panel.
 *   <li>{@link #packTransposed}: each panel row is a contiguous run along k in the source
 *       (op(A) = A, op(B) = Bᵀ). The runs are bulk-copied into a scratch array, then transposed
 *       array to array, where C2 drops the bounds checks; element-wise segment reads cost about
 *       as much as the whole multiply at small sizes.
 * </ul>
 */
final class GemmPacking {
  private static final VectorSpecies<Float> SPECIES = GemmMicroKernel.SPECIES;
  private static final int LANES = GemmMicroKernel.LANES;
  private static final int MR = GemmMicroKernel.MR;
  private static final int NR = GemmMicroKernel.NR;
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

  private GemmPacking() {}

  /**
   * Packs op(A)[i0 .. i0+mr) x [p0 .. p0+kc) into {@code dst[0 .. MR*kc)}, zero rows below mr, for
   * an untransposed A (stored m x k: panel row i is the run A[i0+i][p0 .. p0+kc)). A transposed A
   * is packed a group of panels at a time by {@link #packTransposedGroup}. {@code aOff} is the byte
   * offset of A's element (0, 0); {@code ldaBytes} its row pitch.
   */
  static void packA(MemorySegment a, long aOff, long ldaBytes, int i0, int mr, int p0, int kc, float[] dst,
      float[] scratch, TransposeMap map) {
    packTransposed(a, aOff + i0 * ldaBytes + 4L * p0, ldaBytes, mr, kc, MR, dst, 0, scratch, map);
  }

  /**
   * Packs op(B)[p0 .. p0+kc) x [j0 .. j0+nc) into ceil(nc/NR) micro-panels of kc*NR floats each,
   * starting at {@code dst[dstOffset]}, zero columns past nc. {@code bOff} is the byte offset of
   * B's element (0, 0).
   */
  static void packB(boolean transposed, MemorySegment b, long bOff, long ldbBytes, int p0, int kc,
      int j0, int nc, float[] dst, int dstOffset, float[] scratch, TransposeMap map) {
    for (int jp = 0, panel = 0; jp < nc; jp += NR, panel++) {
      int cols = Math.min(NR, nc - jp);
      int to = dstOffset + panel * kc * NR;
      if (transposed) {
        // B is stored n x k: panel column j is the run B[j0+jp+j][p0 .. p0+kc).
        packTransposed(b, bOff + (j0 + jp) * ldbBytes + 4L * p0, ldbBytes, cols, kc, NR, dst, to, scratch, map);
      } else {
        // B is stored k x n: k step p is the run B[p0+p][j0+jp .. j0+jp+cols).
        packRuns(b, bOff + p0 * ldbBytes + 4L * (j0 + jp), ldbBytes, cols, kc, NR, dst, to);
      }
    }
  }

  /**
   * Packs the rows [0, rows) of a group of op(A) = Aᵀ panels (see GemmTask.rowGroup): panel q gets
   * {@code dst[q*kc*MR + p*MR + r] = A[p][q*MR + r]} for the kc k steps, zero past {@code rows}.
   * {@code first} is the byte offset of the group's first float in k row 0, {@code pitch} A's row
   * pitch. Each k row of the group is read once, front to back.
   *
   * <p>Whole vectors where they fit: a vector may read up to LANES - MR floats of the next panel's
   * rows (which exist, as the bound checks) and store them past this panel's MR slot, into k step
   * p + 1's slot, which the next k step overwrites. The last k step has no next one, so it, and
   * any read that would pass the group's rows, goes float by float.
   */
  static void packTransposedGroup(MemorySegment src, long first, long pitch, int rows, int kc, float[] dst) {
    int panels = (rows + MR - 1) / MR;
    for (int p = 0; p < kc; p++) {
      long from = first + p * pitch;
      boolean lastStep = p == kc - 1;
      for (int q = 0; q < panels; q++) {
        int d = q * kc * MR + p * MR;
        int r0 = q * MR;
        for (int v = 0; v < MR; v += LANES) {
          if (!lastStep && r0 + v + LANES <= rows) {
            FloatVector.fromMemorySegment(SPECIES, src, from + 4L * (r0 + v), ORDER).intoArray(dst, d + v);
          } else {
            int end = Math.min(MR, v + LANES);
            for (int r = v; r < end; r++) {
              dst[d + r] = r0 + r < rows ? src.get(FLOAT, from + 4L * (r0 + r)) : 0f;
            }
          }
        }
      }
    }
  }

  /**
   * {@code dst[to + p*width + r] = src[p-th run][r]} for r < count, 0 for count <= r < width,
   * where run p starts at byte {@code first + p*pitch}.
   */
  private static void packRuns(MemorySegment src, long first, long pitch, int count, int kc, int width,
      float[] dst, int to) {
    if (count == width && width % LANES == 0) {
      for (int p = 0; p < kc; p++) {
        long from = first + p * pitch;
        int d = to + p * width;
        for (int v = 0; v < width; v += LANES) {
          FloatVector.fromMemorySegment(SPECIES, src, from + 4L * v, ORDER).intoArray(dst, d + v);
        }
      }
      return;
    }
    for (int p = 0; p < kc; p++) {
      long from = first + p * pitch;
      int d = to + p * width;
      for (int v = 0; v < width; v += LANES) {
        // Lanes past count read nothing and store zero; lanes past width are not stored at all.
        VectorMask<Float> present = SPECIES.indexInRange(v, count);
        VectorMask<Float> inPanel = SPECIES.indexInRange(v, width);
        FloatVector.fromMemorySegment(SPECIES, src, from + 4L * v, ORDER, present)
            .intoArray(dst, d + v, inPanel);
      }
    }
  }

  /**
   * {@code dst[to + p*width + r] = run_r[p]} for r < count, 0 for count <= r < width, where run r
   * holds kc floats starting at byte {@code first + r*pitch}. {@code scratch} holds width*kc floats.
   */
  private static void packTransposed(MemorySegment src, long first, long pitch, int count, int kc,
      int width, float[] dst, int to, float[] scratch, TransposeMap map) {
    // Vector copies rather than MemorySegment.copy: at these run lengths (tens to hundreds of
    // floats) the bulk copy's per-call checks cost more than the data movement.
    int whole = kc - kc % LANES;
    for (int r = 0; r < count; r++) {
      long from = first + r * pitch;
      int d = r * kc;
      int p = 0;
      for (; p < whole; p += LANES) {
        FloatVector.fromMemorySegment(SPECIES, src, from + 4L * p, ORDER).intoArray(scratch, d + p);
      }
      if (p < kc) {
        VectorMask<Float> tail = SPECIES.indexInRange(p, kc);
        FloatVector.fromMemorySegment(SPECIES, src, from + 4L * p, ORDER, tail).intoArray(scratch, d + p, tail);
      }
    }
    if (count < width) {
      Arrays.fill(scratch, count * kc, width * kc, 0f);
    }
    // The panel, read as consecutive vectors, is a fixed gather pattern over the scratch rows
    // that repeats every LANES k steps, shifted by LANES: one gather per output vector instead of
    // LANES scalar moves with strided stores.
    int[] index = map.indexFor(kc, width);
    int p = 0;
    for (; p < whole; p += LANES) {
      int out = to + p * width;
      for (int q = 0; q < width * LANES; q += LANES) {
        FloatVector.fromArray(SPECIES, scratch, p, index, q).intoArray(dst, out + q);
      }
    }
    for (; p < kc; p++) {
      int out = to + p * width;
      for (int r = 0; r < width; r++) {
        dst[out + r] = scratch[r * kc + p];
      }
    }
  }

  /**
   * The gather pattern of {@link #packTransposed} for one (kc, width): entry {@code f} of the first
   * {@code LANES * width} panel floats comes from scratch index {@code (f % width) * kc + f / width}.
   * Recomputed only when kc changes, which is once per call at most.
   */
  static final class TransposeMap {
    private int[] index = new int[0];
    private int kc = -1;
    private int width = -1;

    int[] indexFor(int kc, int width) {
      if (kc != this.kc || width != this.width) {
        int n = LANES * width;
        if (index.length < n) {
          index = new int[n];
        }
        for (int f = 0; f < n; f++) {
          index[f] = (f % width) * kc + f / width;
        }
        this.kc = kc;
        this.width = width;
      }
      return index;
    }
  }
}
