package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Packs blocks of op(A) and op(B) into the contiguous panels the micro-kernel streams.
 *
 * <p>A is packed one MR-row micro-panel at a time, row by row at a fixed pitch of KC floats:
 * {@code Ap[i*KC + p] = op(A)[i][p]}; one k step of the kernel reads one float from each of the MR
 * rows. B is packed as a block of NR-column micro-panels, each k-major:
 * {@code Bp[panel][p*NR + j] = op(B)[p][j]}, so one k step reads NR consecutive floats. Rows or
 * columns past the edge of the matrix are packed as zeros, so the kernel always computes full
 * tiles and only the store is cut to size.
 *
 * <p>Four shapes of source:
 * <ul>
 *   <li>op(A) = A: each panel row is a run along k in the source; {@link #packA} copies it.
 *   <li>op(A) = Aᵀ: each k step is a run along the panel rows; {@link #packTransposedGroup}
 *       transposes a group of panels in 4 x 4 tiles.
 *   <li>op(B) = B: each k step of a panel is a run in the source; {@link #packRuns} copies it, one
 *       vector per run, masked for a partial panel.
 *   <li>op(B) = Bᵀ: each panel column is a run along k; {@link #packTransposed} bulk-copies the runs
 *       into a scratch array, then transposes array to array, where C2 drops the bounds checks.
 * </ul>
 */
final class GemmPacking {
  private static final VectorSpecies<Float> SPECIES = GemmMicroKernel.SPECIES;
  private static final int LANES = GemmMicroKernel.LANES;
  private static final int MR = GemmMicroKernel.MR;
  private static final int NR = GemmMicroKernel.NR;
  /** 4 x 4 tiles of the transposed-A packing, at every vector width. */
  private static final VectorSpecies<Integer> QUAD = IntVector.SPECIES_128;
  private static final IntVector PAIR_LOW = IntVector.fromArray(QUAD, new int[] {0, 1, 4, 5}, 0);
  private static final IntVector PAIR_HIGH = IntVector.fromArray(QUAD, new int[] {2, 3, 6, 7}, 0);
  private static final IntVector EVEN = IntVector.fromArray(QUAD, new int[] {0, 4, 2, 6}, 0);
  private static final IntVector ODD = IntVector.fromArray(QUAD, new int[] {1, 5, 3, 7}, 0);
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

  private GemmPacking() {}

  /**
   * Floats in one packed A panel: MR rows at a pitch of KC floats, whatever the stage's kc. The
   * pitch is fixed so that the micro-kernel sees it as a constant (see GemmMicroKernel.computeAndStore).
   */
  static int panelFloats() {
    return MR * GemmBlocking.KC;
  }

  /**
   * Packs op(A)[i0 .. i0+mr) x [p0 .. p0+kc) into {@code dst}, row i at {@code dst[dstOffset + i*KC]}, zero rows
   * below mr, for an untransposed A (stored m x k: panel row i is the run A[i0+i][p0 .. p0+kc)).
   * So packing is a row copy, whole vectors then float by float. (The panel used to be k-major,
   * {@code Ap[p*MR + i]}, which made this a transpose that cost a quarter of a 64^3 product.)
   * A transposed A is packed a group of panels at a time by {@link #packTransposedGroup}.
   * {@code aOff} is the byte offset of A's element (0, 0); {@code ldaBytes} its row pitch.
   */
  static void packA(MemorySegment a, long aOff, long ldaBytes, int i0, int mr, int p0, int kc, float[] dst,
      int dstOffset) {
    final int pitch = GemmBlocking.KC;
    int whole = kc - kc % LANES;
    for (int i = 0; i < MR; i++) {
      int row = dstOffset + i * pitch;
      if (i >= mr) {
        Arrays.fill(dst, row, row + kc, 0f);
        continue;
      }
      long from = aOff + (i0 + i) * ldaBytes + 4L * p0;
      int p = 0;
      for (; p < whole; p += LANES) {
        FloatVector.fromMemorySegment(SPECIES, a, from + 4L * p, ORDER).intoArray(dst, row + p);
      }
      for (; p < kc; p++) {
        dst[row + p] = a.get(FLOAT, from + 4L * p);
      }
    }
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
   * Packs the rows [0, rows) of a group of op(A) = Aᵀ panels (see GemmTask.rowBlock) in the
   * layout of {@link #packA}: panel q starts at {@code dstOffset + q * panelFloats()} and holds
   * {@code A[p][q*MR + r]} at row r, k step p; rows past {@code rows} are zero. {@code first} is
   * the byte offset of the group's first float in k row 0, {@code pitch} A's row pitch.
   *
   * <p>A's k rows run along the panel rows, so this is a transpose. It goes in 4 x 4 tiles of
   * 128-bit vectors: four k rows are read front to back across the whole group, and each tile turns
   * into four runs of 4 k steps, one per panel row, with two rounds of two-vector lane selects. Group
   * row c sits at {@code c * KC} whichever panel it falls in, so a tile may straddle two panels
   * without any special case (MR need not be a multiple of 4). What is left over (k steps past a
   * multiple of 4, rows past a multiple of 4) goes float by float.
   */
  static void packTransposedGroup(MemorySegment src, long first, long pitch, int rows, int kc, float[] dst,
      int dstOffset) {
    final int rowPitch = GemmBlocking.KC;
    int panels = (rows + MR - 1) / MR;
    int tiledRows = rows & ~3;
    int tiledK = kc & ~3;
    for (int p = 0; p < tiledK; p += 4) {
      long k0 = first + p * pitch;
      long k1 = k0 + pitch;
      long k2 = k1 + pitch;
      long k3 = k2 + pitch;
      for (int c = 0; c < tiledRows; c += 4) {
        IntVector x0 = IntVector.fromMemorySegment(QUAD, src, k0 + 4L * c, ORDER);
        IntVector x1 = IntVector.fromMemorySegment(QUAD, src, k1 + 4L * c, ORDER);
        IntVector x2 = IntVector.fromMemorySegment(QUAD, src, k2 + 4L * c, ORDER);
        IntVector x3 = IntVector.fromMemorySegment(QUAD, src, k3 + 4L * c, ORDER);
        // Round 1 pairs k rows two apart: y0 = x0[0,1] x2[0,1], y2 = x0[2,3] x2[2,3], same for y1, y3.
        IntVector y0 = PAIR_LOW.selectFrom(x0, x2);
        IntVector y2 = PAIR_HIGH.selectFrom(x0, x2);
        IntVector y1 = PAIR_LOW.selectFrom(x1, x3);
        IntVector y3 = PAIR_HIGH.selectFrom(x1, x3);
        // Round 2 interleaves neighbours: output u is k steps p..p+3 of group row c+u.
        int at = dstOffset + c * rowPitch + p;
        EVEN.selectFrom(y0, y1).reinterpretAsFloats().intoArray(dst, at);
        ODD.selectFrom(y0, y1).reinterpretAsFloats().intoArray(dst, at + rowPitch);
        EVEN.selectFrom(y2, y3).reinterpretAsFloats().intoArray(dst, at + 2 * rowPitch);
        ODD.selectFrom(y2, y3).reinterpretAsFloats().intoArray(dst, at + 3 * rowPitch);
      }
    }
    // Group row r sits at r * rowPitch whichever panel it falls in: panels are MR rows apart.
    for (int r = 0; r < panels * MR; r++) {
      int row = dstOffset + r * rowPitch;
      for (int p = r < tiledRows ? tiledK : 0; p < kc; p++) {
        dst[row + p] = r < rows ? src.get(FLOAT, first + p * pitch + 4L * r) : 0f;
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
   * Copies {@code count} floats from byte {@code from} of {@code src} to {@code dst[to ..]}: whole
   * vectors, then one masked vector for the rest. Vector copies rather than MemorySegment.copy:
   * for the packing's runs of tens to hundreds of floats, the bulk copy's per-call checks cost more
   * than the data movement; for the tile rows of A in {@code GemmTask.direct} (3 KiB at 64^3) the two
   * measured alike (all of A at 64^3: 90-130 ns either way).
   */
  static void copyRun(MemorySegment src, long from, int count, float[] dst, int to) {
    int whole = count - count % LANES;
    int p = 0;
    for (; p < whole; p += LANES) {
      FloatVector.fromMemorySegment(SPECIES, src, from + 4L * p, ORDER).intoArray(dst, to + p);
    }
    if (p < count) {
      VectorMask<Float> tail = SPECIES.indexInRange(p, count);
      FloatVector.fromMemorySegment(SPECIES, src, from + 4L * p, ORDER, tail).intoArray(dst, to + p, tail);
    }
  }

  /**
   * {@code dst[to + p*width + r] = run_r[p]} for r < count, 0 for count <= r < width, where run r
   * holds kc floats starting at byte {@code first + r*pitch}. {@code scratch} holds width*kc floats.
   */
  private static void packTransposed(MemorySegment src, long first, long pitch, int count, int kc,
      int width, float[] dst, int to, float[] scratch, TransposeMap map) {
    int whole = kc - kc % LANES;
    for (int r = 0; r < count; r++) {
      copyRun(src, first + r * pitch, kc, scratch, r * kc);
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
