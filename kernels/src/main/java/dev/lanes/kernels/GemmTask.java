package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One validated GEMM call, and the BLIS-style loops that compute a slice of it.
 *
 * <p>Loop nest for one thread's slice of C (rows [m0, m1), columns [n0, n1)):
 * <pre>
 *   for jc in n0..n1 step NC            B block columns (L2)
 *     for pc in 0..k step KC            the k-sum in KC chunks, always in this order
 *       pack op(B)[pc:+KC, jc:+NC]      -> NC/NR micro-panels
 *       for ir in m0..m1 step MR
 *         pack op(A)[ir:+MR, pc:+KC]    -> one micro-panel, lands in L1
 *         for jr in 0..NC step NR
 *           micro-kernel: C[ir:+MR, jc+jr:+NR] (+)= alpha * Ap * Bp
 * </pre>
 * With several threads and at least as many row tiles as column tiles, the threads go through the
 * (jc, pc) stages together: each packs the stage's B block into its own buffer, they meet at a
 * barrier, then take MR-row panels from a shared counter until none are left. Taking panels
 * dynamically keeps both cores busy when a noisy neighbour slows one of them, which a static split
 * cannot. Each thread packs the whole block itself, on purpose: with one shared block (BLIS style)
 * every core read half of it from the other core's L2, and measured 144-153 GFLOPS on two cores at
 * 1024^3 against 156-191 with private copies; the duplicated packing is under 1% of the flops.
 * The barrier keeps the stages in order for every tile: no tile starts stage s+1 before all of
 * stage s is done. Short, wide problems instead give each thread a static range of NR-column tiles.
 *
 * <p>Either way nothing splits k, and every tile sees the stages in the same order, so every
 * element of C is summed in the same order, and gets the same bits, for any thread count.
 *
 * <p>An instance is reused per calling thread: its fields are set for a call and cleared after
 * it, so a call allocates nothing.
 */
final class GemmTask implements ParallelTask {
  private static final ThreadLocal<GemmTask> PER_THREAD = ThreadLocal.withInitial(GemmTask::new);

  private boolean transA;
  private boolean transB;
  private int m;
  private int n;
  private int k;
  private float alpha;
  private float beta;
  private MemorySegment a;
  private long aOff;
  private long ldaBytes;
  private MemorySegment b;
  private long bOff;
  private long ldbBytes;
  /** op(B) packed ahead of the call ({@link PackedB} layout), or null to pack B stage by stage. */
  private float[] packedB;
  private MemorySegment c;
  private long cOff;
  private long ldcBytes;
  /** Split rows (true) or columns (false) between threads. */
  private boolean splitRows;

  // State shared by the threads of one cooperative call; reused across calls.
  private final SpinBarrier barrier = new SpinBarrier();
  private final AtomicInteger[] nextRowPanel = {new AtomicInteger(), new AtomicInteger()};

  static GemmTask forCurrentThread() {
    return PER_THREAD.get();
  }

  void set(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, long aOffset,
      int lda, MemorySegment b, long bOffset, int ldb, float beta, MemorySegment c, long cOffset, int ldc) {
    this.transA = transA;
    this.transB = transB;
    this.m = m;
    this.n = n;
    this.k = k;
    this.alpha = alpha;
    this.beta = beta;
    this.a = a;
    this.aOff = aOffset * Float.BYTES;
    this.ldaBytes = (long) lda * Float.BYTES;
    this.b = b;
    this.bOff = bOffset * Float.BYTES;
    this.ldbBytes = (long) ldb * Float.BYTES;
    this.packedB = null;
    this.c = c;
    this.cOff = cOffset * Float.BYTES;
    this.ldcBytes = (long) ldc * Float.BYTES;
    long rowTiles = (m + GemmMicroKernel.MR - 1) / GemmMicroKernel.MR;
    long colTiles = (n + GemmMicroKernel.NR - 1) / GemmMicroKernel.NR;
    this.splitRows = rowTiles >= colTiles;
  }

  /** {@link #set} for a product whose op(B) was packed ahead ({@link PackedB}). */
  void setPacked(boolean transA, int m, int n, int k, float alpha, MemorySegment a, long aOffset, int lda,
      float[] packedB, float beta, MemorySegment c, long cOffset, int ldc) {
    set(transA, false, m, n, k, alpha, a, aOffset, lda, null, 0, Math.max(1, n), beta, c, cOffset, ldc);
    this.packedB = packedB;
  }

  /** Drops the references to the caller's operands so a finished call keeps nothing alive. */
  void clear() {
    a = null;
    b = null;
    packedB = null;
    c = null;
  }

  /** How many pieces this call can usefully be cut into: one per tile along the split dimension. */
  int maxParts() {
    return splitRows ? (m + GemmMicroKernel.MR - 1) / GemmMicroKernel.MR
        : (n + GemmMicroKernel.NR - 1) / GemmMicroKernel.NR;
  }

  long flops() {
    return 2L * m * n * k;
  }

  /** Whether the parts of this call go through the stages together (see the class comment). */
  private boolean cooperative(int parts) {
    return parts > 1 && splitRows && k != 0 && alpha != 0f;
  }

  /** Called on the calling thread before the parts run. */
  void prepare(int parts) {
    if (cooperative(parts)) {
      barrier.reset(parts);
      nextRowPanel[0].set(0);
      nextRowPanel[1].set(0);
    }
  }

  @Override
  public void run(int part, int parts) {
    if (cooperative(parts)) {
      try {
        stages(0, m, 0, n, GemmWorkspace.forCurrentThread(), true, part);
      } catch (RuntimeException | Error e) {
        barrier.breakBarrier();
        throw e;
      }
      return;
    }
    int tile = splitRows ? GemmMicroKernel.MR : GemmMicroKernel.NR;
    int extent = splitRows ? m : n;
    int tiles = (extent + tile - 1) / tile;
    int from = Math.min(extent, (int) ((long) tiles * part / parts) * tile);
    int to = Math.min(extent, (int) ((long) tiles * (part + 1) / parts) * tile);
    if (from >= to) {
      return;
    }
    if (splitRows) {
      compute(from, to, 0, n, GemmWorkspace.forCurrentThread());
    } else {
      compute(0, m, from, to, GemmWorkspace.forCurrentThread());
    }
  }

  private void compute(int m0, int m1, int n0, int n1, GemmWorkspace ws) {
    if (k == 0 || alpha == 0f) {
      scale(m0, m1, n0, n1);
      return;
    }
    stages(m0, m1, n0, n1, ws, false, 0);
  }

  /**
   * The stage loops for rows [m0, m1) and columns [n0, n1): for each (jc, pc) stage, pack its B
   * block into this thread's buffer, then run the MR-row panels. Alone ({@code shared} false), a
   * thread takes its panels in order. Cooperating, it first meets the others at the barrier, then
   * takes panels from the call's shared counter until none are left.
   */
  private void stages(int m0, int m1, int n0, int n1, GemmWorkspace ws, boolean shared, int part) {
    final int mr = GemmMicroKernel.MR;
    // Row panels are handed out, and with a transposed A packed, in groups: see rowGroup.
    final int groupRows = mr * (transA ? GemmBlocking.TRANSPOSED_A_GROUP : 1);
    final int kcMax = GemmBlocking.KC;
    final int ncMax = GemmBlocking.NC;
    int stage = 0;
    for (int jc = n0; jc < n1; jc += ncMax) {
      int nc = Math.min(ncMax, n1 - jc);
      for (int pc = 0; pc < k; pc += kcMax, stage++) {
        int kc = Math.min(kcMax, k - pc);
        // Only the first chunk of the k-sum sees beta; later chunks accumulate onto it.
        float betaHere = pc == 0 ? beta : 1f;
        float[] bData;
        int bFirst;
        int bStride;
        if (packedB == null) {
          GemmPacking.packB(transB, b, bOff, ldbBytes, pc, kc, jc, nc, ws.bBlock, 0, ws.transposeScratch, ws.bMap);
          bData = ws.bBlock;
          bFirst = 0;
          bStride = kc * GemmMicroKernel.NR;
        } else {
          // Packed ahead: the stage's chunk of panel jc/NR starts pc rows into that panel.
          bData = packedB;
          bFirst = (jc / GemmMicroKernel.NR * k + pc) * GemmMicroKernel.NR;
          bStride = k * GemmMicroKernel.NR;
        }
        if (!shared) {
          for (int ir = m0; ir < m1; ir += groupRows) {
            rowGroup(ws, ir, Math.min(groupRows, m1 - ir), pc, kc, jc, nc, bData, bFirst, bStride, betaHere);
          }
          continue;
        }
        barrier.await();
        if (part == 0) {
          // Past this barrier every thread has finished stage - 1, so its counter, which stage + 1
          // reuses, can be rearmed; nobody takes from it before the next barrier, which needs part 0.
          nextRowPanel[(stage + 1) & 1].set(0);
        }
        AtomicInteger next = nextRowPanel[stage & 1];
        for (int ir = m0 + next.getAndIncrement() * groupRows; ir < m1;
            ir = m0 + next.getAndIncrement() * groupRows) {
          rowGroup(ws, ir, Math.min(groupRows, m1 - ir), pc, kc, jc, nc, bData, bFirst, bStride, betaHere);
        }
      }
    }
  }

  /**
   * Up to {@link GemmBlocking#TRANSPOSED_A_GROUP} row panels of one stage, {@code rows} rows from
   * {@code ir}: pack their A, then run each against the B block.
   *
   * <p>Why groups when A is transposed: op(A) = Aᵀ with A stored k x m, so one panel's k steps are
   * 12-float runs from kc rows of A a full row pitch apart. For a pitch of 4 KB (m = 1024) all those
   * rows fall into the same L1 set, and packing one panel at a time missed L1 on nearly every run:
   * the dW = dGᵀX GEMM of an LSTM backward ran at 0.64-0.73 of the untransposed product of the
   * same shape. A group reads each of its kc rows once, as one contiguous run of up to 96 floats.
   * An untransposed A is packed one panel at a time from rows that are contiguous along k already.
   */
  private void rowGroup(GemmWorkspace ws, int ir, int rows, int pc, int kc, int jc, int nc, float[] bBlock,
      int bFirst, int bStride, float betaHere) {
    final int mr = GemmMicroKernel.MR;
    if (!transA) {
      GemmPacking.packA(a, aOff, ldaBytes, ir, rows, pc, kc, ws.aPanel);
      rowPanel(ws, ir, rows, kc, jc, nc, ws.aPanel, 0, bBlock, bFirst, bStride, betaHere);
      return;
    }
    GemmPacking.packTransposedGroup(a, aOff + pc * ldaBytes + 4L * ir, ldaBytes, rows, kc, ws.aGroup);
    for (int q = 0; q * mr < rows; q++) {
      rowPanel(ws, ir + q * mr, Math.min(mr, rows - q * mr), kc, jc, nc, ws.aGroup, q * GemmPacking.panelFloats(), bBlock, bFirst,
          bStride, betaHere);
    }
  }

  /**
   * Loops 2 and 1 for one MR-row panel of one stage: pack the A micro-panel, then run the
   * micro-kernel against every NR-column panel of the packed B block and store each tile.
   *
   * <p>A method of its own, called once per row panel and stage (over a thousand times per
   * 2048^3 call), so C2 compiles it after a few calls. Inlined into the stage loops, which run a
   * handful of times per call, it stayed in interpreted or OSR code for most of a benchmark.
   */
  private void rowPanel(GemmWorkspace ws, int ir, int rows, int kc, int jc, int nc, float[] aData, int aFirst,
      float[] bBlock, int bFirst, int bStride, float betaHere) {
    final int nr = GemmMicroKernel.NR;
    long cRow = cOff + ir * ldcBytes + (long) jc * Float.BYTES;
    for (int jr = 0, panel = 0; jr < nc; jr += nr, panel++) {
      GemmMicroKernel.compute(kc, aData, aFirst, bBlock, bFirst + panel * bStride, ws.tile);
      GemmMicroKernel.store(ws.tile, c, cRow + (long) jr * Float.BYTES, ldcBytes, rows,
          Math.min(nr, nc - jr), alpha, betaHere);
    }
  }

  /** C = beta * C, for k == 0 or alpha == 0, where BLAS reads neither A nor B. */
  private void scale(int m0, int m1, int n0, int n1) {
    if (beta == 1f) {
      return;
    }
    for (int i = m0; i < m1; i++) {
      long row = cOff + i * ldcBytes;
      for (int j = n0; j < n1; j++) {
        long at = row + (long) j * Float.BYTES;
        c.set(JAVA_FLOAT_UNALIGNED, at, beta == 0f ? 0f : beta * c.get(JAVA_FLOAT_UNALIGNED, at));
      }
    }
  }
}
