package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Layer normalization over the last axis of a row-major {@code [rows, cols]} matrix, PyTorch's
 * {@code layer_norm(x, [cols], gamma, beta, eps)}:
 * {@code y = (x - mean) / sqrt(var + eps) * gamma + beta}, with the biased variance of each row.
 *
 * <p>The forward saves each row's mean and {@code rstd = 1/sqrt(var + eps)} ({@code [rows]}
 * each), which the backward takes. The variance is computed in two passes (the mean first, then
 * the squared deviations), so that rows with a large mean and a small spread do not cancel.
 * Backward: {@code dx = rstd (g - mean(g) - xhat mean(g xhat))} with {@code g = dy gamma} and
 * {@code xhat = (x - mean) rstd}; {@code dgamma = sum over rows of dy xhat} and
 * {@code dbeta = sum over rows of dy}, both overwritten. Every call checks its buffers first.
 *
 * <p>Threads: the forward splits rows; the backward splits fixed {@value #BLOCK_ROWS}-row blocks and
 * adds their dgamma and dbeta partial sums in block order. Results do not depend on the thread count.
 */
public final class LayerNorm {
  private static final ThreadLocal<float[]> SUMS = ThreadLocal.withInitial(() -> new float[2]);
  /**
   * Rows per block of the backward's dgamma and dbeta sums. Fixed, so the order of additions (rows
   * in a block in order, then blocks in order) is the same for any thread count; 32 rows keep the
   * partial buffer at 2 cols floats per 32 rows, a few percent of the data the backward reads.
   */
  static final int BLOCK_ROWS = 32;

  private LayerNorm() {}

  /** Forward on {@link Parallelism#getDefault()}; mean and rstd ({@code [rows]} each) are written for the backward. y may be x. */
  public static void forward(int rows, int cols, float eps, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment beta, long betaOffset, MemorySegment y, long yOffset, MemorySegment mean,
      long meanOffset, MemorySegment rstd, long rstdOffset) {
    forward(rows, cols, eps, x, xOffset, gamma, gammaOffset, beta, betaOffset, y, yOffset, mean, meanOffset, rstd,
        rstdOffset, Parallelism.getDefault());
  }

  /**
   * Forward; threads take runs of whole rows, each computed as it would be alone, so the result does
   * not depend on the thread count.
   */
  public static void forward(int rows, int cols, float eps, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment beta, long betaOffset, MemorySegment y, long yOffset, MemorySegment mean,
      long meanOffset, MemorySegment rstd, long rstdOffset, Parallelism parallelism) {
    checkShape(rows, cols, eps);
    matrix("x", x, xOffset, rows, cols, false);
    vector("gamma", gamma, gammaOffset, cols, false);
    vector("beta", beta, betaOffset, cols, false);
    matrix("y", y, yOffset, rows, cols, true);
    vector("mean", mean, meanOffset, rows, true);
    vector("rstd", rstd, rstdOffset, rows, true);
    Checks.notNull(parallelism, "parallelism");
    Task task = Task.start(false, rows, cols, x, xOffset, gamma, gammaOffset, y, yOffset, mean, meanOffset, rstd,
        rstdOffset);
    task.affine(eps, beta, betaOffset);
    task.run(parallelism, rows);
  }

  private static void forwardRows(int from, int to, int cols, float eps, MemorySegment x, long xOffset,
      MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset, MemorySegment y, long yOffset,
      MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset) {
    if (from >= to) {
      return;
    }
    // Each row's sum comes from the previous row's last pass (see normalizeAffineSummingNext), the
    // same bits as summing it on its own.
    float sum = ChannelSums.sum(x, 4 * (xOffset + (long) from * cols), cols);
    for (long r = from; r < to; r++) {
      long xAt = 4 * (xOffset + r * cols);
      float mu = sum / cols;
      float variance = NormLoops.squaredDeviations(cols, x, xAt, mu) / cols;
      float inverse = (float) (1 / Math.sqrt((double) variance + eps));
      mean.set(JAVA_FLOAT_UNALIGNED, 4 * (meanOffset + r), mu);
      rstd.set(JAVA_FLOAT_UNALIGNED, 4 * (rstdOffset + r), inverse);
      long yAt = 4 * (yOffset + r * cols);
      // The last row has no next row to sum, and re-reads its own (in L1) instead: a separate pass
      // for it ran once per call, too rarely for C2 ever to compile it, and boxed every vector in
      // the interpreter: 33 KB per 4096x1024 call, found by the benchmarks' allocation column.
      long nextAt = r + 1 < to ? xAt + 4L * cols : xAt;
      sum = NormLoops.normalizeAffineSummingNext(cols, x, xAt, mu, inverse, gamma, 4 * gammaOffset, beta,
          4 * betaOffset, y, yAt, nextAt);
    }
  }

  /** Backward on {@link Parallelism#getDefault()}, from the forward's input x and its saved mean and rstd. dx may be dy. */
  public static void backward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset, MemorySegment dy,
      long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma, long dgammaOffset, MemorySegment dbeta,
      long dbetaOffset) {
    backward(rows, cols, x, xOffset, gamma, gammaOffset, mean, meanOffset, rstd, rstdOffset, dy, dyOffset, dx,
        dxOffset, dgamma, dgammaOffset, dbeta, dbetaOffset, Parallelism.getDefault());
  }

  /**
   * Backward. The rows are cut into fixed blocks of {@value #BLOCK_ROWS}, whatever the thread count;
   * threads take runs of whole blocks, each block adds its rows' dgamma and dbeta terms into a
   * partial sum of its own, and the calling thread adds the partial sums in block order. So the
   * result does not depend on the thread count.
   */
  public static void backward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment gamma,
      long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset, MemorySegment dy,
      long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma, long dgammaOffset, MemorySegment dbeta,
      long dbetaOffset, Parallelism parallelism) {
    checkShape(rows, cols, 0);
    matrix("x", x, xOffset, rows, cols, false);
    vector("gamma", gamma, gammaOffset, cols, false);
    vector("mean", mean, meanOffset, rows, false);
    vector("rstd", rstd, rstdOffset, rows, false);
    matrix("dy", dy, dyOffset, rows, cols, false);
    matrix("dx", dx, dxOffset, rows, cols, true);
    vector("dgamma", dgamma, dgammaOffset, cols, true);
    vector("dbeta", dbeta, dbetaOffset, cols, true);
    Checks.notNull(parallelism, "parallelism");
    int blocks = (rows + BLOCK_ROWS - 1) / BLOCK_ROWS;
    MemorySegment partials = Task.partials(2L * blocks * cols);
    Task task = Task.start(true, rows, cols, x, xOffset, gamma, gammaOffset, dx, dxOffset, mean, meanOffset, rstd,
        rstdOffset);
    task.gradient(dy, dyOffset);
    task.partials = partials;
    task.run(parallelism, blocks);
    // The blocks' partial sums, added in block order: block b's dgamma terms at 2b cols, dbeta's after.
    SegmentLoops.fill(dgamma, 4 * dgammaOffset, cols, 0f);
    SegmentLoops.fill(dbeta, 4 * dbetaOffset, cols, 0f);
    for (int b = 0; b < blocks; b++) {
      SegmentLoops.addInto(partials, 4L * 2 * b * cols, dgamma, 4 * dgammaOffset, cols);
      SegmentLoops.addInto(partials, 4L * (2L * b + 1) * cols, dbeta, 4 * dbetaOffset, cols);
    }
  }

  /** Backward over the blocks [from, to): dx, and each block's dgamma and dbeta terms into its partials. */
  private static void backwardBlocks(int from, int to, int rows, int cols, MemorySegment x, long xOffset,
      MemorySegment gamma, long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
      long rstdOffset, MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset, MemorySegment partials) {
    float[] sums = SUMS.get();
    for (int b = from; b < to; b++) {
      long gAt = 4L * 2 * b * cols;
      long bAt = gAt + 4L * cols;
      SegmentLoops.fill(partials, gAt, 2 * cols, 0f);
      for (long r = (long) b * BLOCK_ROWS, end = Math.min(rows, r + BLOCK_ROWS); r < end; r++) {
        long xAt = 4 * (xOffset + r * cols);
        long dyAt = 4 * (dyOffset + r * cols);
        float mu = mean.get(JAVA_FLOAT_UNALIGNED, 4 * (meanOffset + r));
        float inverse = rstd.get(JAVA_FLOAT_UNALIGNED, 4 * (rstdOffset + r));
        NormLoops.rowGradientSums(cols, x, xAt, mu, inverse, dy, dyAt, gamma, 4 * gammaOffset, partials, gAt,
            partials, bAt, sums);
        NormLoops.rowInputGradient(cols, x, xAt, mu, inverse, dy, dyAt, gamma, 4 * gammaOffset, sums[0] / cols,
            sums[1] / cols, dx, 4 * (dxOffset + r * cols));
      }
    }
  }

  /**
   * A forward (runs of rows) or backward (runs of blocks) cut between threads. One instance per
   * calling thread, reused (fields set for a call, segments cleared after it), so a call allocates
   * nothing; the backward's partial sums live in a per-calling-thread buffer that grows once to the
   * largest call seen.
   */
  private static final class Task extends NormTask {
    private static final ThreadLocal<Task> PER_THREAD = ThreadLocal.withInitial(Task::new);
    private static final ThreadLocal<MemorySegment[]> PARTIALS =
        ThreadLocal.withInitial(() -> new MemorySegment[] {MemorySegment.NULL});
    /** Below this many floats per thread a call stays on the calling thread. */
    private static final long MIN_FLOATS_PER_THREAD = 1 << 15;

    private boolean backward;
    private int rows;
    private int cols;
    private MemorySegment partials;

    static Task start(boolean backward, int rows, int cols, MemorySegment x, long xOffset, MemorySegment gamma,
        long gammaOffset, MemorySegment out, long outOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
        long rstdOffset) {
      Task task = PER_THREAD.get();
      task.backward = backward;
      task.rows = rows;
      task.cols = cols;
      task.operands(x, xOffset, gamma, gammaOffset, out, outOffset, mean, meanOffset, rstd, rstdOffset);
      return task;
    }

    /** The calling thread's partial-sum buffer of at least {@code floats} floats (shareable with workers). */
    static MemorySegment partials(long floats) {
      MemorySegment[] slot = PARTIALS.get();
      if (slot[0].byteSize() < 4 * floats) {
        slot[0] = Arena.ofAuto().allocate(4 * floats, 64);
      }
      return slot[0];
    }

    /** Runs {@code units} rows (forward) or blocks (backward), cut into runs per thread. */
    void run(Parallelism parallelism, int units) {
      try {
        parallelism.invoke(this,
            parallelism.parts((long) rows * cols, MIN_FLOATS_PER_THREAD, units, operandsShareable()));
      } finally {
        release();
        partials = null;
      }
    }

    @Override
    public void run(int part, int parts) {
      int units = backward ? (rows + BLOCK_ROWS - 1) / BLOCK_ROWS : rows;
      int from = (int) ((long) units * part / parts);
      int to = (int) ((long) units * (part + 1) / parts);
      if (backward) {
        backwardBlocks(from, to, rows, cols, x, xOffset, gamma, gammaOffset, mean, meanOffset, rstd, rstdOffset, dy,
            dyOffset, out, outOffset, partials);
      } else {
        forwardRows(from, to, cols, eps, x, xOffset, gamma, gammaOffset, beta, betaOffset, out, outOffset, mean,
            meanOffset, rstd, rstdOffset);
      }
    }
  }

  static void checkShape(int rows, int cols, float eps) {
    Checks.nonNegative(rows, "rows");
    Checks.positive(cols, "cols");
    if (!(eps >= 0) || Float.isInfinite(eps)) {
      throw new IllegalArgumentException("eps = " + eps + " must be finite and >= 0");
    }
  }

  private static void matrix(String name, MemorySegment s, long offset, int rows, int cols, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[rows,cols]", rows, cols, -1, -1, offset, Checks.floats(s));
  }

  static void vector(String name, MemorySegment s, long offset, int length, boolean written) {
    Elementwise.span(length, s, offset, name, written);
  }
}
