package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One validated {@link Conv2d} call and the loops that run it: per image, per group, per chunk of
 * output positions, an im2col (or col2im) around a GEMM. Offsets in the fields are in floats.
 *
 * <p>Forward and backward-data hand out whole images from a shared counter (a slow core takes
 * fewer); each image is computed entirely by one thread, so where it ran changes no bit.
 * Backward-weights cuts the C*R*S columns of dW into one contiguous range per thread; each thread
 * goes through all images and chunks in order for its columns, and builds only its rows of the
 * column matrix.
 *
 * <p>An instance is reused per calling thread, so a call allocates nothing.
 */
final class ConvTask implements ParallelTask {
  static final int FORWARD = 0;
  static final int BACKWARD_DATA = 1;
  static final int BACKWARD_WEIGHTS = 2;

  private static final ThreadLocal<ConvTask> PER_THREAD = ThreadLocal.withInitial(ConvTask::new);
  /** Per-thread workspace for calls that pass none; grows, never shrinks, freed with the thread. */
  private static final ThreadLocal<MemorySegment[]> OWN_WORKSPACE =
      ThreadLocal.withInitial(() -> new MemorySegment[] {MemorySegment.NULL});

  private final AtomicInteger nextImage = new AtomicInteger();
  private Conv2d g;
  private int pass;
  private MemorySegment a;
  private long aOff;
  private MemorySegment b;
  private long bOff;
  private MemorySegment bias;
  private long biasOff;
  private MemorySegment out;
  private long outOff;
  private MemorySegment ws;
  /**
   * Byte offset in ws of what this pass keeps there: the column chunks, after dWᵀ for the weight
   * gradient (see {@link #weights}).
   */
  private long wsBase;
  /** Parallelism for the GEMMs: the caller's when the call is not split, else sequential. */
  private Parallelism inner;

  /**
   * Runs one pass. The operands by pass: forward (x, w, bias, y), backward-data (dy, w, -, dx),
   * backward-weights (x, dy, -, dw).
   */
  static void run(Conv2d g, int pass, MemorySegment a, long aOff, MemorySegment b, long bOff,
      MemorySegment bias, long biasOff, MemorySegment out, long outOff, MemorySegment workspace,
      Parallelism parallelism) {
    if (pass == BACKWARD_DATA && g.dataConv != null) {
      // dx = conv(dy, reversed w): the reversed weights go first in the workspace, the forward
      // pass's column chunks after them.
      MemorySegment ws = workspace != null ? workspace : ownWorkspace(g.workspaceFloats(parallelism.threads()));
      reverseWeights(g, b, bOff, ws);
      run(g.dataConv, FORWARD, a, aOff, ws, 0, null, 0, out, outOff, ws, 4L * g.weightFloats(), parallelism);
      return;
    }
    run(g, pass, a, aOff, b, bOff, bias, biasOff, out, outOff, workspace, 0, parallelism);
  }

  /**
   * {@code wr[grp*cg + c][k][R-1-r][S-1-s] = w[grp*kg + k][c][r][s]}: the weights of
   * {@code g.dataConv}, at the start of {@code ws}.
   */
  private static void reverseWeights(Conv2d g, MemorySegment w, long wOff, MemorySegment ws) {
    int kg = g.filters / g.groups;
    int cg = g.channels / g.groups;
    int taps = g.kernelH * g.kernelW;
    for (int grp = 0; grp < g.groups; grp++) {
      for (int k = 0; k < kg; k++) {
        for (int c = 0; c < cg; c++) {
          long from = wOff + ((long) (grp * kg + k) * cg + c) * taps;
          long to = ((long) (grp * cg + c) * kg + k) * taps + taps - 1;
          for (int t = 0; t < taps; t++) {
            ws.setAtIndex(JAVA_FLOAT_UNALIGNED, to - t, w.getAtIndex(JAVA_FLOAT_UNALIGNED, from + t));
          }
        }
      }
    }
  }

  private static void run(Conv2d g, int pass, MemorySegment a, long aOff, MemorySegment b, long bOff,
      MemorySegment bias, long biasOff, MemorySegment out, long outOff, MemorySegment workspace, long wsBase,
      Parallelism parallelism) {
    int limit = pass == BACKWARD_WEIGHTS ? (g.groups * g.colRows + GemmMicroKernel.NR - 1) / GemmMicroKernel.NR
        : g.batch;
    int parts = Math.min(parallelism.threads(), limit);
    if (parts > 1 && !(Checks.shareable(a) && Checks.shareable(b) && Checks.shareable(bias)
        && Checks.shareable(out) && Checks.shareable(workspace))) {
      parts = 1;
    }
    if (g.flops() < Gemm.MIN_FLOPS_PER_THREAD) {
      parts = 1;
    }
    ConvTask task = PER_THREAD.get();
    task.g = g;
    task.pass = pass;
    task.a = a;
    task.aOff = aOff;
    task.b = b;
    task.bOff = bOff;
    task.bias = bias;
    task.biasOff = biasOff;
    task.out = out;
    task.outOff = outOff;
    task.ws = workspace != null ? workspace : ownWorkspace(g.workspaceFloats(parts));
    task.wsBase = wsBase;
    task.inner = parts == 1 ? parallelism : Parallelism.sequential();
    task.nextImage.set(0);
    try {
      parallelism.invoke(task, parts);
    } finally {
      task.g = null;
      task.a = null;
      task.b = null;
      task.bias = null;
      task.out = null;
      task.ws = null;
      task.inner = null;
    }
  }

  private static MemorySegment ownWorkspace(long floats) {
    MemorySegment[] holder = OWN_WORKSPACE.get();
    if (holder[0].byteSize() < 4 * floats) {
      // An automatic arena: the old buffer is freed by the GC once nothing refers to it, and the
      // segment may be used by the pool's workers.
      holder[0] = Arena.ofAuto().allocate(4 * Math.max(floats, 1), 64);
    }
    return holder[0];
  }

  @Override
  public void run(int part, int parts) {
    long wsAt = pass == BACKWARD_WEIGHTS
        ? wsBase + 4L * (g.direct() ? 0 : g.weightFloats()) + 4L * part * g.colRows * g.weightChunk
        : wsBase + 4L * part * g.colRows * g.chunk;
    if (pass == BACKWARD_WEIGHTS) {
      int columns = g.groups * g.colRows;
      int panels = (columns + GemmMicroKernel.NR - 1) / GemmMicroKernel.NR;
      int from = Math.min(columns, (int) ((long) panels * part / parts) * GemmMicroKernel.NR);
      int to = Math.min(columns, (int) ((long) panels * (part + 1) / parts) * GemmMicroKernel.NR);
      weights(from, to, wsAt);
      return;
    }
    for (int n = nextImage.getAndIncrement(); n < g.batch; n = nextImage.getAndIncrement()) {
      if (pass == FORWARD) {
        forwardImage(n, wsAt);
      } else {
        dataImage(n, wsAt);
      }
    }
  }

  /** y[n] = W * col(x[n]) + b, group by group, chunk by chunk. */
  private void forwardImage(int n, long wsAt) {
    Conv2d g = this.g;
    int positions = g.outHeight * g.outWidth;
    int kg = g.filters / g.groups;
    int cg = g.channels / g.groups;
    long xImage = aOff + (long) n * g.channels * g.height * g.width;
    long yImage = outOff + (long) n * g.filters * positions;
    if (bias != null) {
      for (int k = 0; k < g.filters; k++) {
        float value = bias.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, biasOff + k);
        SegmentLoops.fill(out, 4L * (yImage + (long) k * positions), positions, value);
      }
    }
    float beta = bias != null ? 1f : 0f;
    for (int grp = 0; grp < g.groups; grp++) {
      long xGroup = xImage + (long) grp * cg * g.height * g.width;
      long wGroup = bOff + (long) grp * kg * g.colRows;
      long yGroup = yImage + (long) grp * kg * positions;
      if (g.direct()) {
        Gemm.multiply(false, false, kg, positions, g.colRows, 1f, b, wGroup, g.colRows,
            a, xGroup, positions, beta, out, yGroup, positions, inner);
        continue;
      }
      for (int p0 = 0; p0 < positions; p0 += g.chunk) {
        int p1 = Math.min(positions, p0 + g.chunk);
        Im2col.fill(g, a, 4L * xGroup, 0, g.colRows, p0, p1, ws, wsAt);
        Gemm.multiply(false, false, kg, p1 - p0, g.colRows, 1f, b, wGroup, g.colRows,
            ws, wsAt / 4, p1 - p0, beta, out, yGroup + p0, positions, inner);
      }
    }
  }

  /** dx[n] = col2im(Wᵀ * dy[n]), group by group, chunk by chunk. */
  private void dataImage(int n, long wsAt) {
    Conv2d g = this.g;
    int positions = g.outHeight * g.outWidth;
    int kg = g.filters / g.groups;
    int cg = g.channels / g.groups;
    int plane = g.height * g.width;
    long dyImage = aOff + (long) n * g.filters * positions;
    long dxImage = outOff + (long) n * g.channels * plane;
    if (!g.direct()) {
      SegmentLoops.fill(out, 4L * dxImage, g.channels * plane, 0f);
    }
    for (int grp = 0; grp < g.groups; grp++) {
      long dyGroup = dyImage + (long) grp * kg * positions;
      long wGroup = bOff + (long) grp * kg * g.colRows;
      long dxGroup = dxImage + (long) grp * cg * plane;
      if (g.direct()) {
        Gemm.multiply(true, false, g.colRows, positions, kg, 1f, b, wGroup, g.colRows,
            a, dyGroup, positions, 0f, out, dxGroup, positions, inner);
        continue;
      }
      for (int p0 = 0; p0 < positions; p0 += g.chunk) {
        int p1 = Math.min(positions, p0 + g.chunk);
        Gemm.multiply(true, false, g.colRows, p1 - p0, kg, 1f, b, wGroup, g.colRows,
            a, dyGroup + p0, positions, 0f, ws, wsAt / 4, p1 - p0, inner);
        Im2col.drainAdd(g, ws, wsAt, 0, g.colRows, p0, p1, out, 4L * dxGroup);
      }
    }
  }

  /**
   * dW[:, from:to) (columns over all groups, q_global = grp * colRows + q) = sum over images and
   * chunks of dy_g * colᵀ, building only rows [from, to) of each group's column matrix.
   *
   * <p>Computed transposed, {@code dWᵀ_g += col * dy_gᵀ}, into the head of the workspace, then
   * copied into dW: that way the GEMM's transposed operand is the small dy chunk (K/groups rows)
   * rather than the column chunk ((C/groups)*R*S rows), whose transposing pack was the slow part
   * (measured, 64 x 576 x 448 per chunk: 32-36 GFLOPS as dy * colᵀ, 44-48 as col * dyᵀ, Zen 3).
   * Every element is the same dot in the same order either way, so the bits do not change.
   */
  private void weights(int from, int to, long wsAt) {
    Conv2d g = this.g;
    int positions = g.outHeight * g.outWidth;
    int kg = g.filters / g.groups;
    int cg = g.channels / g.groups;
    int plane = g.height * g.width;
    for (int grp = from / g.colRows; grp < g.groups && grp * g.colRows < to; grp++) {
      int q0 = Math.max(from - grp * g.colRows, 0);
      int q1 = Math.min(to - grp * g.colRows, g.colRows);
      long dwGroup = outOff + (long) grp * kg * g.colRows + q0;
      // dWᵀ_g, colRows x kg, at the head of the workspace (floats).
      long dwtGroup = wsBase / 4 + (long) grp * g.colRows * kg;
      for (int n = 0; n < g.batch; n++) {
        long xGroup = aOff + ((long) n * g.channels + (long) grp * cg) * plane;
        long dyGroup = bOff + ((long) n * g.filters + (long) grp * kg) * positions;
        if (g.direct()) {
          Gemm.multiply(false, true, kg, q1 - q0, positions, 1f, b, dyGroup, positions,
              a, xGroup + (long) q0 * plane, positions, n == 0 ? 0f : 1f, out, dwGroup, g.colRows, inner);
          continue;
        }
        for (int p0 = 0; p0 < positions; p0 += g.weightChunk) {
          int p1 = Math.min(positions, p0 + g.weightChunk);
          Im2col.fill(g, a, 4L * xGroup, q0, q1, p0, p1, ws, wsAt);
          Gemm.multiply(false, true, q1 - q0, kg, p1 - p0, 1f, ws, wsAt / 4, p1 - p0, b, dyGroup + p0, positions,
              n == 0 && p0 == 0 ? 0f : 1f, ws, dwtGroup + (long) q0 * kg, kg, inner);
        }
      }
      if (!g.direct()) {
        // dW_g[k][q] = dWᵀ_g[q][k] for this part's rows q.
        for (int q = q0; q < q1; q++) {
          for (int k = 0; k < kg; k++) {
            out.setAtIndex(JAVA_FLOAT_UNALIGNED, dwGroup + (long) k * g.colRows + (q - q0),
                ws.getAtIndex(JAVA_FLOAT_UNALIGNED, dwtGroup + (long) q * kg + k));
          }
        }
      }
    }
  }
}
