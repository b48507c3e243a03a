package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * One validated GEMM call, and the BLIS-style loops that compute a slice of it.
 *
 * <p>Loop nest for one thread's slice of C (rows [m0, m1), columns [n0, n1)), Goto's:
 * <pre>
 *   for jc in n0..n1 step NC            B block columns
 *     for pc in 0..k step KC            the k-sum in KC chunks, always in this order
 *       pack op(B)[pc:+KC, jc:+NC]      -> NC/NR micro-panels (L3 or L2)
 *       for ic in m0..m1 step MC        (blocks handed out to threads, see below)
 *         pack op(A)[ic:+MC, pc:+KC]    -> MC/MR micro-panels (L2)
 *         for jr in 0..NC step NR       this B micro-panel stays in L1 ...
 *           for ir in 0..MC step MR     ... while the A micro-panels stream past it from L2
 *             micro-kernel: C[ic+ir:+MR, jc+jr:+NR] (+)= alpha * Ap * Bp
 * </pre>
 * Why this order: per k step the kernel loads NR floats of B and broadcasts only MR of A, so B is
 * the operand to keep in L1. The order before it kept one A micro-panel in L1 and streamed the
 * whole B block past it for each one: with the 2-row micro-panels of the AVX2 kernel that would
 * read the B block (L3-resident on a Zen 3 core) once per 2 rows of C. See GemmBlocking for the
 * measured comparison.
 *
 * <p>With several threads and at least as many row tiles as column tiles, the threads share the
 * work as tickets: ticket t is A block {@code t % blocks} of stage {@code t / blocks}, stages in the
 * (jc, pc) order above, and each thread takes the next ticket from one shared counter until none
 * are left. Taking blocks dynamically keeps both cores busy when a noisy neighbour slows one of
 * them, which a static split cannot; blocks are cut small enough that each thread gets several per
 * stage ({@link #blockRows}). A thread packs a stage's B block into its own buffer when its first
 * ticket of that stage comes up, on purpose: with one shared block (BLIS style) every core read half
 * of it from the other core's L2, and measured 144-153 GFLOPS on two cores at 1024^3 against 156-191
 * with private copies.
 *
 * <p>Stage order per block, without a barrier: before a thread works on block b in stage s it waits
 * until block b has finished stage s - 1 ({@link #finishedStage}, written with release and read
 * with acquire semantics, so that the C tiles written there are visible). That ticket was taken
 * earlier, by a thread that is running it, so a wait is short and never waits on a part that has
 * not started. The barrier this replaced made every thread wait at the end of every stage for the
 * slowest block: JMH, two threads, the same rounds, median time against OpenBLAS's, barrier then
 * tickets: 256^3 0.94 then 1.00, 512^3 0.97 then 1.02, 1024^3 0.84 then 0.88, 2048^3 0.77 then
 * 0.84. Short, wide problems instead give each thread a static range of NR-column tiles.
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
  /** Whether this call skips packing ({@link #direct}). */
  private boolean unpacked;

  // State shared by the threads of one cooperative call; reused across calls.
  private final AtomicLong nextTicket = new AtomicLong();
  /** Per A block of a cooperative call, the last stage it has finished (-1: none yet). Grows, never shrinks. */
  private int[] finishedStage = new int[0];
  private volatile boolean failed;
  private static final VarHandle FINISHED = MethodHandles.arrayElementVarHandle(int[].class);

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
    this.unpacked = unpacked(transA, transB, m, n, k, lda, alpha, b != null && b.isNative());
  }

  /**
   * Products at most this large (in floating-point operations) skip packing when their shape
   * allows ({@link #unpacked}); 0 turns the unpacked path off. Where 256^3 comes from: Lanes over
   * OpenBLAS, one thread, call by call in one JVM (`./lanes interleaved`, median of 5 rounds, two
   * JVMs each), unpacked then packed: 128^3 1.23-1.24 then 1.11, 192^3 1.09-1.10 then 1.04-1.05,
   * 256^3 1.04 either way, 320^3 1.01 then 1.04. The likely reason, not measured on its own: with
   * 4 rows per tile each B vector the kernel loads feeds 4 FMAs, against 12 in the packed kernel,
   * and the larger the product the less of B stays in L1 from one tile row to the next, so B is
   * read from L2 more often than packing it once would cost.
   */
  static final long DIRECT_MAX_FLOPS = Long.getLong("lanes.gemm.directMaxFlops", 2L * 256 * 256 * 256);

  /**
   * Whether this product goes the unpacked way ({@link #direct}). It does when both operands are
   * untransposed, the k-sum fits one stage (so each element gets exactly the packed path's FMA
   * chain), the product is small, and A's rows are close enough together that copying a tile's rows
   * in one piece, gaps included, does not copy much that is not A. Only at 512 bits, where the
   * packed kernel is 12 x 2: the unpacked tile's 16 accumulators, 4 B vectors and a broadcast fit
   * AVX-512's 32 registers, not AVX2's 16. (The copy, {@code 3*lda + k <= 7*KC} floats, always
   * fits the A block buffer, which holds {@code MC >= 8*MR} rows of KC.)
   *
   * <p>B must be a native segment. Once a program has passed both heap and native segments, the
   * Vector API's segment-access code has seen both kinds, and a load from a segment inside a k
   * loop is compiled for both: with the float[] overloads (heap segments) and native segments
   * alternating, the unpacked path's native calls ran at 0.70-0.89 of the packed path's speed
   * (64^3, 256^3). The packed kernel reads only arrays, so heap operands, which always come with
   * that mix, go that way: 256^3 on arrays ran at 139-151 GFLOPS there against 97-101 unpacked.
   *
   * <p>B must fit in half of L2. Every 4-row tile row reads all of B again, so a short, wide
   * product of few flops with a large B (the gate GEMMs of a recurrent layer, batch 64) streams B
   * from L3. Lanes over OpenBLAS, one thread, one JVM per column (1 MiB L2), unpacked then packed:
   * 64 x 1024 x 256 (B 1 MiB) 0.87-0.89 then 1.16, 64 x 768 x 256 (768 KiB) 0.95-1.14 then
   * 1.17-1.18, but 64 x 384 x 384 (576 KiB) 1.30 then 1.21, 64 x 512 x 256 (512 KiB) 1.30 then
   * 1.18, 64 x 256 x 256 1.35 then 1.00.
   */
  static boolean unpacked(boolean transA, boolean transB, int m, int n, int k, int lda, float alpha,
      boolean bNative) {
    return GemmMicroKernel.MR == 12 && !transA && !transB && bNative && k != 0 && k <= GemmBlocking.KC
        && alpha != 0f && 2L * m * n * k <= DIRECT_MAX_FLOPS && lda <= 2L * k
        && (long) k * n * Float.BYTES <= GemmBlocking.L2_BYTES / 2;
  }

  /** {@link #set} for a product whose op(B) was packed ahead ({@link PackedB}). */
  void setPacked(boolean transA, int m, int n, int k, float alpha, MemorySegment a, long aOffset, int lda,
      float[] packedB, float beta, MemorySegment c, long cOffset, int ldc) {
    set(transA, false, m, n, k, alpha, a, aOffset, lda, null, 0, Math.max(1, n), beta, c, cOffset, ldc);
    this.packedB = packedB;
    this.unpacked = false;
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
    return parts > 1 && splitRows && k != 0 && alpha != 0f && !unpacked;
  }

  /** Called on the calling thread before the parts run. */
  void prepare(int parts) {
    if (cooperative(parts)) {
      int rows = blockRows(m, parts);
      int blocks = (m + rows - 1) / rows;
      if (finishedStage.length < blocks) {
        finishedStage = new int[blocks];
      }
      Arrays.fill(finishedStage, 0, blocks, -1);
      nextTicket.set(0);
      failed = false;
    }
  }

  @Override
  public void run(int part, int parts) {
    if (cooperative(parts)) {
      try {
        tickets(GemmWorkspace.forCurrentThread(), parts);
      } catch (RuntimeException | Error e) {
        failed = true;
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
    if (unpacked) {
      direct(m0, m1, n0, n1, ws);
      return;
    }
    stages(m0, m1, n0, n1, ws);
  }

  /**
   * Rows of A per packed block: at most {@link GemmBlocking#MC}, and for a call shared by threads
   * small enough that each thread gets about four blocks per stage, so that the dynamic hand-out
   * can even out a slow core; always whole transposed-A groups, or whole micro-panels.
   */
  private int blockRows(int rows, int parts) {
    int unit = GemmMicroKernel.MR * (transA ? GemmBlocking.TRANSPOSED_A_GROUP : 1);
    int wanted = (int) ((rows + 4L * parts - 1) / (4L * parts));
    int rounded = (wanted + unit - 1) / unit * unit;
    return Math.max(unit, Math.min(GemmBlocking.MC, rounded));
  }

  /** The stage loops for rows [m0, m1) and columns [n0, n1) on this thread alone, blocks in order. */
  private void stages(int m0, int m1, int n0, int n1, GemmWorkspace ws) {
    for (int jc = n0; jc < n1; jc += GemmBlocking.NC) {
      int nc = Math.min(GemmBlocking.NC, n1 - jc);
      for (int pc = 0; pc < k; pc += GemmBlocking.KC) {
        int kc = Math.min(GemmBlocking.KC, k - pc);
        stageB(ws, pc, kc, jc, nc);
        for (int ic = m0; ic < m1; ic += GemmBlocking.MC) {
          rowBlock(ws, ic, Math.min(GemmBlocking.MC, m1 - ic), pc, kc, jc, nc, pc == 0 ? beta : 1f);
        }
      }
    }
  }

  /**
   * A cooperative call's share for one thread: tickets from the shared counter until none are left
   * (see the class comment). Only the first chunk of the k-sum sees beta; later chunks accumulate
   * onto it.
   */
  private void tickets(GemmWorkspace ws, int parts) {
    final int blockRows = blockRows(m, parts);
    final int blocks = (m + blockRows - 1) / blockRows;
    final int kStages = (k + GemmBlocking.KC - 1) / GemmBlocking.KC;
    final long tickets = (long) blocks * kStages * ((n + GemmBlocking.NC - 1) / GemmBlocking.NC);
    final int[] finished = finishedStage;
    int packedStage = -1;
    for (long t = nextTicket.getAndIncrement(); t < tickets; t = nextTicket.getAndIncrement()) {
      int stage = (int) (t / blocks);
      int block = (int) (t - (long) stage * blocks);
      int jc = stage / kStages * GemmBlocking.NC;
      int pc = stage % kStages * GemmBlocking.KC;
      int nc = Math.min(GemmBlocking.NC, n - jc);
      int kc = Math.min(GemmBlocking.KC, k - pc);
      if (stage != packedStage) {
        stageB(ws, pc, kc, jc, nc);
        packedStage = stage;
      }
      awaitFinished(finished, block, stage - 1);
      int ic = block * blockRows;
      rowBlock(ws, ic, Math.min(blockRows, m - ic), pc, kc, jc, nc, pc == 0 ? beta : 1f);
      FINISHED.setRelease(finished, block, stage);
    }
  }

  /** Waits until {@code block} has finished {@code stage}: spins, then naps, and gives up if a part failed. */
  private void awaitFinished(int[] finished, int block, int stage) {
    int spins = 0;
    while ((int) FINISHED.getAcquire(finished, block) < stage) {
      if (failed) {
        throw new IllegalStateException("another thread of this kernel call failed");
      }
      if (++spins < 20_000) {
        Thread.onSpinWait();
      } else {
        LockSupport.parkNanos(20_000);
      }
    }
  }

  /** Points this thread's workspace at a stage's block of op(B), packing it now unless it was packed ahead. */
  private void stageB(GemmWorkspace ws, int pc, int kc, int jc, int nc) {
    if (packedB == null) {
      GemmPacking.packB(transB, b, bOff, ldbBytes, pc, kc, jc, nc, ws.bBlock, 0, ws.transposeScratch, ws.bMap);
      ws.stageB = ws.bBlock;
      ws.stageBFirst = 0;
      ws.stageBStride = kc * GemmMicroKernel.NR;
    } else {
      // Packed ahead: the stage's chunk of panel jc/NR starts pc rows into that panel.
      ws.stageB = packedB;
      ws.stageBFirst = (jc / GemmMicroKernel.NR * k + pc) * GemmMicroKernel.NR;
      ws.stageBStride = k * GemmMicroKernel.NR;
    }
  }

  /**
   * One A block of one stage, {@code rows} rows from {@code ic}: pack it, then run each B
   * micro-panel of the stage against all of its micro-panels.
   *
   * <p>Why groups when A is transposed: op(A) = Aᵀ with A stored k x m, so one panel's k steps are
   * MR-float runs from kc rows of A a full row pitch apart. For a pitch of 4 KB (m = 1024) all those
   * rows fall into the same L1 set, and packing one panel at a time missed L1 on nearly every run:
   * the dW = dGᵀX GEMM of an LSTM backward ran at 0.64-0.73 of the untransposed product of the
   * same shape. A group reads each of its kc rows once, as one contiguous run of up to 96 floats.
   * An untransposed A is packed one panel at a time from rows that are contiguous along k already.
   */
  private void rowBlock(GemmWorkspace ws, int ic, int rows, int pc, int kc, int jc, int nc, float betaHere) {
    final float[] bData = ws.stageB;
    final int bFirst = ws.stageBFirst;
    final int bStride = ws.stageBStride;
    final int mr = GemmMicroKernel.MR;
    final int panelFloats = GemmPacking.panelFloats();
    float[] aBlock = ws.aBlock;
    if (!transA) {
      for (int q = 0; q * mr < rows; q++) {
        GemmPacking.packA(a, aOff, ldaBytes, ic + q * mr, Math.min(mr, rows - q * mr), pc, kc, aBlock,
            q * panelFloats);
      }
    } else {
      final int groupRows = mr * GemmBlocking.TRANSPOSED_A_GROUP;
      for (int g = 0; g * groupRows < rows; g++) {
        GemmPacking.packTransposedGroup(a, aOff + pc * ldaBytes + 4L * (ic + g * groupRows), ldaBytes,
            Math.min(groupRows, rows - g * groupRows), kc, aBlock, g * GemmBlocking.TRANSPOSED_A_GROUP * panelFloats);
      }
    }
    final int nr = GemmMicroKernel.NR;
    long cBlock = cOff + ic * ldcBytes + (long) jc * Float.BYTES;
    for (int jr = 0, panel = 0; jr < nc; jr += nr, panel++) {
      columnPanel(ws, rows, kc, aBlock, bData, bFirst + panel * bStride, cBlock + (long) jr * Float.BYTES,
          Math.min(nr, nc - jr), betaHere);
    }
  }

  /**
   * Loop 1 for one B micro-panel: the micro-kernel for each MR-row micro-panel of the packed A
   * block against it, each tile merged into C as it is done.
   *
   * <p>A method of its own, called once per B micro-panel and A block (thousands of times per
   * 2048^3 call), so C2 compiles it after a few calls. Inlined into the stage loops, which run a
   * handful of times per call, the loops around the kernel stayed in interpreted or OSR code for
   * most of a benchmark. The loop over A micro-panels stays out here, not in the micro-kernel:
   * moved into it (one call per column of tiles), the 1024^3 product ran at 0.84-0.87 of the speed
   * of one call per tile (medians per fifth of 200 calls, alternating in one JVM).
   */
  private void columnPanel(GemmWorkspace ws, int rows, int kc, float[] aBlock, float[] bData, int bAt, long cAt,
      int cols, float betaHere) {
    final int mr = GemmMicroKernel.MR;
    final int panelFloats = GemmPacking.panelFloats();
    for (int q = 0; q * mr < rows; q++) {
      GemmMicroKernel.computeAndStore(kc, aBlock, q * panelFloats, bData, bAt, ws.tile, c, cAt + (long) q * mr * ldcBytes,
          ldcBytes, Math.min(mr, rows - q * mr), cols, alpha, betaHere);
    }
  }

  /**
   * Rows [m0, m1) and columns [n0, n1) of a small product without packing ({@link GemmDirectKernel}):
   * for each {@link GemmDirectKernel#ROWS}-row tile row, A's rows are copied into the A block buffer
   * in one run, gaps between rows included, and then every WIDE-column tile reads B where it is. The
   * columns past the last whole WIDE tile, fewer than WIDE, are packed once into NR-wide panels,
   * zeros past n1, so that no vector load runs past B's end, and go through the narrow kernel.
   *
   * <p>A whole tile of a plain product (alpha 1, beta 0) into a native C is stored by the kernel
   * itself; every other tile goes through this thread's tile and {@link GemmDirectKernel#merge}.
   *
   * <p>Why one tile row at a time: copying all of A first (16 KiB at 64^3) pushed A, B and C
   * (16 KiB each) out of the 48 KiB L1 on their way through the kernel (measured with the 12-row
   * tiles this path had before: 64^3 at 0.82-0.84 of OpenBLAS with the whole copy, 0.84-0.87 with
   * a copy per tile row).
   */
  private void direct(int m0, int m1, int n0, int n1, GemmWorkspace ws) {
    final int rowsPerTile = GemmDirectKernel.ROWS;
    final int wide = GemmDirectKernel.WIDE;
    final int narrow = GemmDirectKernel.NARROW;
    final int lda = (int) (ldaBytes / Float.BYTES);
    final float[] aRows = ws.aBlock;
    final MemorySegment tile = ws.directTile;
    final long tilePitch = (long) wide * Float.BYTES;
    final long narrowPanelBytes = (long) k * narrow * Float.BYTES;
    // Wide tiles start at n0; the columns from edgeAt on, if any, are the packed narrow panels.
    final int edgeAt = n0 + (n1 - n0) / wide * wide;
    if (edgeAt < n1) {
      int panels = (n1 - edgeAt + narrow - 1) / narrow;
      GemmPacking.packB(false, b, bOff, ldbBytes, 0, k, edgeAt, n1 - edgeAt, ws.bBlock, 0, ws.transposeScratch,
          ws.bMap);
      MemorySegment.copy(ws.bBlock, 0, ws.bEdge, JAVA_FLOAT_UNALIGNED, 0, panels * k * narrow);
    }
    final boolean straight = alpha == 1f && beta == 0f && c.isNative();
    for (int ir = m0; ir < m1; ir += rowsPerTile) {
      int rows = Math.min(rowsPerTile, m1 - ir);
      GemmPacking.copyRun(a, aOff + ir * ldaBytes, (rows - 1) * lda + k, aRows, 0);
      long cRow = cOff + ir * ldcBytes;
      for (int jc = n0; jc < edgeAt; jc += wide) {
        long bAt = bOff + (long) jc * Float.BYTES;
        long cAt = cRow + (long) jc * Float.BYTES;
        if (straight && rows == rowsPerTile) {
          GemmDirectKernel.wide(k, aRows, lda, b, bAt, ldbBytes, c, cAt, ldcBytes);
        } else {
          GemmDirectKernel.wide(k, aRows, lda, b, bAt, ldbBytes, tile, 0, tilePitch);
          GemmDirectKernel.merge(tile, tilePitch, c, cAt, ldcBytes, rows, wide, alpha, beta);
        }
      }
      for (int jc = edgeAt, panel = 0; jc < n1; jc += narrow, panel++) {
        GemmDirectKernel.narrow(k, aRows, lda, ws.bEdge, panel * narrowPanelBytes, (long) narrow * Float.BYTES,
            tile, 0, tilePitch);
        GemmDirectKernel.merge(tile, tilePitch, c, cRow + (long) jc * Float.BYTES, ldcBytes, rows,
            Math.min(narrow, n1 - jc), alpha, beta);
      }
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
