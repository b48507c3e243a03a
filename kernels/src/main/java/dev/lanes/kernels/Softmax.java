package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax and log-softmax over the last axis of a row-major {@code rows x cols} float matrix,
 * forward and backward, and the fused softmax cross-entropy loss with its gradient.
 *
 * <h2>Layout</h2>
 * Rows are contiguous: element (r, i) of a matrix X is float {@code xOffset + r*cols + i} of its
 * segment or array. Outputs may be the inputs (in place).
 *
 * <h2>Numerics</h2>
 * The row maximum m is subtracted before exponentiating, so logits up to ±1e30 neither overflow nor
 * give NaN. As in PyTorch, -inf entries get probability 0 (log-probability -inf), and a row that is
 * all -inf, or holds +inf or NaN, comes out NaN. With {@code u = 2^-24} and {@code n = cols}, each
 * output is within these bounds of the exact value for the same float inputs:
 * <ul>
 *   <li>softmax: relative {@code u (|x_i - m| + 3n + 6)}, plus {@code 2^-126} absolute for
 *       outputs that underflow;
 *   <li>log-softmax: absolute {@code u (|x_i - m| + 3n + 2|log S| + |z_i| + 6)}, S the row's sum of
 *       exponentials.
 * </ul>
 * The {@code |x_i - m|} term is the rounding of the subtraction, which exp turns into a relative
 * error; 3n covers the sum and every term's own exp and subtraction (a term {@code e^-t} carries
 * {@code t e^-t <= 1/e} of error); the constant covers exp ({@code 3u}, see
 * {@link VectorMath#expUpTo88}, whose arguments here are always {@code <= 0}), the reciprocal and
 * the multiply (or the log), and the last rounding.
 *
 * <h2>Errors</h2>
 * Arguments are checked before anything is read or written, with messages that name them.
 */
public final class Softmax {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /**
   * Every vector loop here first checks that its segments are of this class, and the row passes
   * stage rows of other segments (heap arrays, mapped files) through native memory. Why: C2 then
   * knows the segments' exact class and removes the loops' per-access checks (see
   * {@link SegmentLoops#NATIVE}). Without it, whether the checks left the loop hung on a
   * speculation (profiled loop predicates) that failed in the first compiled calls of some runs,
   * after which C2 recompiled with the checks inside: measured with {@code -Xlog:deoptimization=debug}
   * and in the disassembly, and as 1.7x the time of the guarded exponential loop at 1024 x 1000,
   * alternating the two in one JVM. Which runs and shapes fell into it changed with unrelated
   * edits to the exponential.
   */
  private static final Class<?> NATIVE = SegmentLoops.NATIVE;

  private Softmax() {}

  /** {@code y = softmax(x)} row by row, on {@link Parallelism#getDefault()}. */
  public static void forward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    forward(rows, cols, x, xOffset, y, yOffset, Parallelism.getDefault());
  }

  /**
   * {@code y = softmax(x)} row by row. Threads take runs of whole rows; a row is computed the same
   * way on any thread, so the result does not depend on the thread count.
   */
  public static void forward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment y, long yOffset,
      Parallelism parallelism) {
    check(rows, cols, x, xOffset, "x", y, yOffset, "y", null, 0, null);
    Rows.start(Rows.FORWARD, rows, cols, x, xOffset, null, 0, y, yOffset).run(parallelism);
  }

  /** {@code z = log_softmax(x)} row by row, on {@link Parallelism#getDefault()}. */
  public static void logForward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment z, long zOffset) {
    logForward(rows, cols, x, xOffset, z, zOffset, Parallelism.getDefault());
  }

  /** {@code z = log_softmax(x)} row by row; threads as {@link #forward(int, int, MemorySegment, long, MemorySegment, long, Parallelism)}. */
  public static void logForward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment z, long zOffset,
      Parallelism parallelism) {
    check(rows, cols, x, xOffset, "x", z, zOffset, "z", null, 0, null);
    Rows.start(Rows.LOG_FORWARD, rows, cols, x, xOffset, null, 0, z, zOffset).run(parallelism);
  }

  /**
   * Softmax backward from the forward output y: {@code dx_i = y_i (dy_i - sum_j dy_j y_j)}, on
   * {@link Parallelism#getDefault()}.
   */
  public static void backward(int rows, int cols, MemorySegment y, long yOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    backward(rows, cols, y, yOffset, dy, dyOffset, dx, dxOffset, Parallelism.getDefault());
  }

  /** Softmax backward; threads take runs of whole rows, as in the forward. */
  public static void backward(int rows, int cols, MemorySegment y, long yOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset, Parallelism parallelism) {
    check(rows, cols, y, yOffset, "y", dx, dxOffset, "dx", dy, dyOffset, "dy");
    Rows.start(Rows.BACKWARD, rows, cols, y, yOffset, dy, dyOffset, dx, dxOffset).run(parallelism);
  }

  /**
   * Log-softmax backward from the forward output z: {@code dx_i = dy_i - exp(z_i) sum_j dy_j}, on
   * {@link Parallelism#getDefault()}.
   */
  public static void logBackward(int rows, int cols, MemorySegment z, long zOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    logBackward(rows, cols, z, zOffset, dy, dyOffset, dx, dxOffset, Parallelism.getDefault());
  }

  /** Log-softmax backward; threads take runs of whole rows, as in the forward. */
  public static void logBackward(int rows, int cols, MemorySegment z, long zOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset, Parallelism parallelism) {
    check(rows, cols, z, zOffset, "z", dx, dxOffset, "dx", dy, dyOffset, "dy");
    Rows.start(Rows.LOG_BACKWARD, rows, cols, z, zOffset, dy, dyOffset, dx, dxOffset).run(parallelism);
  }

  // ---- Fused softmax + cross-entropy ----

  /**
   * Mean cross-entropy of {@code softmax(logits)} against integer class labels, PyTorch's
   * {@code cross_entropy(logits, labels, ignore_index=ignoreIndex)}, with its gradient in the same
   * pass: {@code dlogits = (softmax - onehot(label)) / count} for every row whose label is not
   * {@code ignoreIndex}, and 0 for rows that are; count is the number of rows not ignored.
   *
   * <p>labels holds {@code rows} int32 values, each in {@code [0, cols)} or equal to ignoreIndex
   * (checked before anything is written). dlogits may be null (the loss alone) or the logits
   * themselves (overwritten by the gradient). Returns NaN when every row is ignored, as PyTorch's
   * mean over nothing does. Error: each row's loss {@code log S + m - x_label} is within
   * {@code u (|m - x_label| + max_i |x_i - m| + 3 cols + 3 + |log S| + |loss_row|)}, and each
   * gradient entry within the softmax bound of the class comment divided by count, plus
   * {@code u |dlogits|}.
   *
   * @return the mean loss over rows not ignored
   */
  public static float crossEntropy(int rows, int cols, MemorySegment logits, long logitsOffset,
      MemorySegment labels, long labelsOffset, int ignoreIndex, MemorySegment dlogits, long dlogitsOffset) {
    return crossEntropy(rows, cols, logits, logitsOffset, labels, labelsOffset, ignoreIndex, dlogits, dlogitsOffset,
        Parallelism.getDefault());
  }

  /**
   * {@link #crossEntropy(int, int, MemorySegment, long, MemorySegment, long, int, MemorySegment, long)}
   * with threads taking runs of whole rows. Each row's loss is kept apart and the calling thread adds
   * them in row order, so the mean has the same bits for any thread count.
   */
  public static float crossEntropy(int rows, int cols, MemorySegment logits, long logitsOffset,
      MemorySegment labels, long labelsOffset, int ignoreIndex, MemorySegment dlogits, long dlogitsOffset,
      Parallelism parallelism) {
    checkLoss(rows, cols, logits, logitsOffset, dlogits, dlogitsOffset);
    Checks.readable(labels, "labels");
    if (labelsOffset < 0 || labelsOffset > labels.byteSize() / 4 - rows) {
      throw new IndexOutOfBoundsException("labels: " + rows + " int32 labels at offset " + labelsOffset
          + " do not fit in its " + labels.byteSize() / 4 + " ints");
    }
    int count = 0;
    for (int r = 0; r < rows; r++) {
      int label = labels.get(JAVA_INT_UNALIGNED, 4 * (labelsOffset + r));
      if (label == ignoreIndex) {
        continue;
      }
      if (label < 0 || label >= cols) {
        throw new IllegalArgumentException("labels[" + r + "] = " + label + " is not a class in [0, " + cols
            + ") nor ignoreIndex = " + ignoreIndex);
      }
      count++;
    }
    Rows task = Rows.start(Rows.CROSS_ENTROPY, rows, cols, logits, logitsOffset, labels, labelsOffset, dlogits,
        dlogitsOffset);
    task.ignoreIndex = ignoreIndex;
    task.count = count;
    return (float) (task.runSummingLosses(parallelism) / count);
  }

  /** One row of {@link #crossEntropy}: its loss, and its gradient into dlogits unless that is null. */
  private static double crossEntropyRow(int cols, MemorySegment logits, long xAt, int label, int ignoreIndex,
      int count, MemorySegment dlogits, long dAt) {
    if (label == ignoreIndex) {
      if (dlogits != null) {
        SegmentLoops.fill(dlogits, dAt, cols, 0f);
      }
      return 0;
    }
    // Read before the exponentials may overwrite the row (dlogits may be the logits).
    float target = logits.get(JAVA_FLOAT_UNALIGNED, xAt + 4L * label);
    float m = rowMax(cols, logits, xAt);
    float s = expSum(cols, logits, xAt, m, dlogits, dAt);
    return crossEntropyLoss(cols, m, target, s, label, count, dlogits, dAt);
  }

  /**
   * The rest of {@link #crossEntropyRow} once the row's exponentials are summed (s) and, unless
   * dlogits is null, stored there: the row's loss, and its gradient in place of the exponentials.
   */
  private static double crossEntropyLoss(int cols, float m, float target, float s, int label, int count,
      MemorySegment dlogits, long dAt) {
    if (dlogits != null) {
      divide(cols, dlogits, dAt, s * count);
      long at = dAt + 4L * label;
      dlogits.set(JAVA_FLOAT_UNALIGNED, at, dlogits.get(JAVA_FLOAT_UNALIGNED, at) - 1f / count);
    }
    return ((double) m - target) + Math.log(s);
  }

  /**
   * Mean cross-entropy of {@code softmax(logits)} against probability targets (a
   * {@code rows x cols} matrix; label smoothing is such a target), PyTorch's
   * {@code cross_entropy(logits, targets)}: {@code loss = -(1/rows) sum_r sum_i t_ri log p_ri},
   * with {@code dlogits = (p T_r - t) / rows}, {@code T_r = sum_i t_ri} (1 for a distribution).
   * dlogits may be null or the logits. Each row's loss is computed as
   * {@code sum_i t_i (m - x_i) + T log S}, a sum of non-negative terms for non-negative targets.
   */
  public static float crossEntropyProbabilities(int rows, int cols, MemorySegment logits, long logitsOffset,
      MemorySegment targets, long targetsOffset, MemorySegment dlogits, long dlogitsOffset) {
    checkLoss(rows, cols, logits, logitsOffset, dlogits, dlogitsOffset);
    Checks.readable(targets, "targets");
    Checks.extent("targets", targetsOffset, rows, cols, Math.max(1, cols), Checks.floats(targets));
    boolean staged = logits.getClass() != NATIVE || targets.getClass() != NATIVE
        || dlogits != null && dlogits.getClass() != NATIVE;
    long bytes = 4L * cols;
    MemorySegment stage = staged ? rowStage(3 * bytes) : null;
    double total = 0;
    for (int r = 0; r < rows; r++) {
      long row = (long) r * cols;
      long xAt = 4 * (logitsOffset + row);
      long tAt = 4 * (targetsOffset + row);
      long dAt = dlogits == null ? 0 : 4 * (dlogitsOffset + row);
      if (!staged) {
        total += probabilitiesRow(rows, cols, logits, xAt, targets, tAt, dlogits, dAt);
        continue;
      }
      // Heap or mapped memory, a row at a time through native memory (see SegmentLoops.NATIVE).
      MemorySegment.copy(logits, xAt, stage, 0, bytes);
      MemorySegment.copy(targets, tAt, stage, bytes, bytes);
      total += probabilitiesRow(rows, cols, stage, 0, stage, bytes, dlogits == null ? null : stage, 2 * bytes);
      if (dlogits != null) {
        MemorySegment.copy(stage, 2 * bytes, dlogits, dAt, bytes);
      }
    }
    return (float) (total / rows);
  }

  /** One row of {@link #crossEntropyProbabilities}: its loss, and its gradient into dlogits unless null. */
  private static double probabilitiesRow(int rows, int cols, MemorySegment logits, long xAt, MemorySegment targets,
      long tAt, MemorySegment dlogits, long dAt) {
    float m = rowMax(cols, logits, xAt);
    float mass = sum(cols, targets, tAt);
    float gap = weightedGap(cols, targets, tAt, logits, xAt, m);
    float s = expSum(cols, logits, xAt, m, dlogits, dAt);
    if (dlogits != null) {
      scaledMinus(cols, dlogits, dAt, mass / (s * rows), targets, tAt, 1f / rows);
    }
    return gap + (double) mass * Math.log(s);
  }

  private static void checkLoss(int rows, int cols, MemorySegment logits, long logitsOffset, MemorySegment dlogits,
      long dlogitsOffset) {
    Checks.nonNegative(rows, "rows");
    if (rows > 0) {
      Checks.positive(cols, "cols");
    }
    Checks.readable(logits, "logits");
    Checks.extent("logits", logitsOffset, rows, cols, Math.max(1, cols), Checks.floats(logits));
    if (dlogits != null) {
      Checks.writable(dlogits, "dlogits");
      Checks.extent("dlogits", dlogitsOffset, rows, cols, Math.max(1, cols), Checks.floats(dlogits));
    }
  }

  /** {@link #crossEntropy(int, int, MemorySegment, long, MemorySegment, long, int, MemorySegment, long)} on arrays; dlogits may be null. */
  public static float crossEntropy(int rows, int cols, float[] logits, int logitsOffset, int[] labels,
      int labelsOffset, int ignoreIndex, float[] dlogits, int dlogitsOffset) {
    return crossEntropy(rows, cols, Checks.array(logits, "logits"), logitsOffset,
        MemorySegment.ofArray(Checks.notNull(labels, "labels")), labelsOffset, ignoreIndex,
        dlogits == null ? null : MemorySegment.ofArray(dlogits), dlogitsOffset);
  }

  /** {@link #crossEntropyProbabilities(int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static float crossEntropyProbabilities(int rows, int cols, float[] logits, int logitsOffset, float[] targets,
      int targetsOffset, float[] dlogits, int dlogitsOffset) {
    return crossEntropyProbabilities(rows, cols, Checks.array(logits, "logits"), logitsOffset, Checks.array(targets, "targets"),
        targetsOffset, dlogits == null ? null : MemorySegment.ofArray(dlogits), dlogitsOffset);
  }

  /** {@link #forward(int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void forward(int rows, int cols, float[] x, int xOffset, float[] y, int yOffset) {
    forward(rows, cols, Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset);
  }

  /** {@link #logForward(int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void logForward(int rows, int cols, float[] x, int xOffset, float[] z, int zOffset) {
    logForward(rows, cols, Checks.array(x, "x"), xOffset, Checks.array(z, "z"), zOffset);
  }

  /** {@link #backward(int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void backward(int rows, int cols, float[] y, int yOffset, float[] dy, int dyOffset,
      float[] dx, int dxOffset) {
    backward(rows, cols, Checks.array(y, "y"), yOffset, Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset);
  }

  /** {@link #logBackward(int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void logBackward(int rows, int cols, float[] z, int zOffset, float[] dy, int dyOffset,
      float[] dx, int dxOffset) {
    logBackward(rows, cols, Checks.array(z, "z"), zOffset, Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset);
  }


  /**
   * A pass over rows, cut into runs of whole rows between threads. One instance per calling thread,
   * reused (fields set for a call, cleared after it), so a call allocates nothing; the buffer of row
   * losses grows once to the most rows seen.
   */
  private static final class Rows implements ParallelTask {
    static final int FORWARD = 0;
    static final int LOG_FORWARD = 1;
    static final int BACKWARD = 2;
    static final int LOG_BACKWARD = 3;
    static final int CROSS_ENTROPY = 4;
    private static final ThreadLocal<Rows> PER_THREAD = ThreadLocal.withInitial(Rows::new);
    /** Below this many floats per thread a call stays on the calling thread. */
    private static final long MIN_FLOATS_PER_THREAD = 1 << 15;
    /**
     * Rows at least this long (32 KiB, L1d's size on the machines measured) take the next row's
     * maximum in the current row's exponential pass (see {@link #expSumAhead}).
     */
    static final int LONG_ROW = 8192;

    private int op;
    private int rows;
    private int cols;
    /** x, y or z; the logits for the loss. */
    private MemorySegment in;
    private long inOffset;
    /** dy; the int32 labels for the loss. */
    private MemorySegment aux;
    private long auxOffset;
    /** y, z or dx; dlogits (or null) for the loss. */
    private MemorySegment out;
    private long outOffset;
    int ignoreIndex;
    int count;
    private double[] losses = new double[0];

    static Rows start(int op, int rows, int cols, MemorySegment in, long inOffset, MemorySegment aux, long auxOffset,
        MemorySegment out, long outOffset) {
      Rows task = PER_THREAD.get();
      task.op = op;
      task.rows = rows;
      task.cols = cols;
      task.in = in;
      task.inOffset = inOffset;
      task.aux = aux;
      task.auxOffset = auxOffset;
      task.out = out;
      task.outOffset = outOffset;
      return task;
    }

    void run(Parallelism parallelism) {
      try {
        parallelism.invoke(this, parts(parallelism));
      } finally {
        clear();
      }
    }

    /** Runs the loss pass, then adds the rows' losses in row order on the calling thread. */
    double runSummingLosses(Parallelism parallelism) {
      if (losses.length < rows) {
        losses = new double[rows];
      }
      try {
        parallelism.invoke(this, parts(parallelism));
        double total = 0;
        for (int r = 0; r < rows; r++) {
          total += losses[r];
        }
        return total;
      } finally {
        clear();
      }
    }

    private int parts(Parallelism parallelism) {
      boolean shareable = Checks.shareable(in) && Checks.shareable(aux) && Checks.shareable(out);
      return parallelism.parts((long) rows * cols, MIN_FLOATS_PER_THREAD, rows, shareable);
    }

    private void clear() {
      in = null;
      aux = null;
      out = null;
    }

    @Override
    public void run(int part, int parts) {
      int from = (int) ((long) rows * part / parts);
      int to = (int) ((long) rows * (part + 1) / parts);
      boolean floatAux = aux != null && op != CROSS_ENTROPY;
      boolean staged = in.getClass() != NATIVE || floatAux && aux.getClass() != NATIVE
          || out != null && out.getClass() != NATIVE;
      long bytes = 4L * cols;
      MemorySegment stage = staged ? rowStage(3 * bytes) : null;
      if (op == BACKWARD && !staged && from < to) {
        backwardRows(from, to);
        return;
      }
      if (cols >= LONG_ROW && (op == FORWARD || op == LOG_FORWARD || op == CROSS_ENTROPY) && !staged && from < to) {
        longRows(from, to);
        return;
      }
      for (int r = from; r < to; r++) {
        long row = (long) r * cols;
        long inAt = 4 * (inOffset + row);
        long auxAt = floatAux ? 4 * (auxOffset + row) : 0;
        long outAt = out == null ? 0 : 4 * (outOffset + row);
        int label = op == CROSS_ENTROPY ? aux.get(JAVA_INT_UNALIGNED, 4 * (auxOffset + r)) : 0;
        if (!staged) {
          runRow(r, label, in, inAt, aux, auxAt, out, outAt);
          continue;
        }
        // Heap or mapped memory, a row at a time through native memory (see SegmentLoops.NATIVE).
        MemorySegment.copy(in, inAt, stage, 0, bytes);
        if (floatAux) {
          MemorySegment.copy(aux, auxAt, stage, bytes, bytes);
        }
        runRow(r, label, stage, 0, floatAux ? stage : null, bytes, out == null ? null : stage, 2 * bytes);
        if (out != null) {
          MemorySegment.copy(stage, 2 * bytes, out, outAt, bytes);
        }
      }
    }

    /**
     * Backward over rows [from, to), one row behind: the loop that takes row r's dot product also
     * writes row r - 1's dx, whose y and dy it read in the step before and are still in L1, so the
     * reads of new rows overlap with that work. Measured against the two loops per row, alternating
     * in one JVM, one thread: 1.20 times the speed at 1024x1000 (interquartile 1.13-1.28), 1.14 at
     * 64x32000 (1.06-1.22) in a slow stretch of the machine; 1.09 and 1.11 in a fast one.
     */
    private void backwardRows(int from, int to) {
      long bytes = 4L * cols;
      long yAt = 4 * (inOffset + (long) from * cols);
      long dyAt = 4 * (auxOffset + (long) from * cols);
      long dxAt = 4 * (outOffset + (long) from * cols);
      // The first row's dot by the same method, writing nothing: a separate dot method called once
      // per call here was inlined without its lane sum, which then boxed a vector (64 B a call).
      float[] lanes = DOT_LANES.get();
      float dot = dotBehindScaled(cols, in, yAt, aux, dyAt, 0f, out, dxAt, 0, false, lanes);
      for (int r = from + 1; r < to; r++) {
        dot = dotBehindScaled(cols, in, yAt, aux, dyAt, dot, out, dxAt, bytes, true, lanes);
        yAt += bytes;
        dyAt += bytes;
        dxAt += bytes;
      }
      scaledDifference(cols, in, yAt, aux, dyAt, dot, out, dxAt);
    }

    /**
     * Forward, log-softmax or loss over long rows [from, to): each row's maximum comes from the pass
     * before (see {@link #expSumAhead}), and the run's first from a pass of its own.
     */
    private void longRows(int from, int to) {
      long bytes = 4L * cols;
      long inAt = 4 * (inOffset + (long) from * cols);
      // Not read when out is null (a loss without dlogits).
      long outAt = 4 * (outOffset + (long) from * cols);
      float m = rowMax(cols, in, inAt);
      for (int r = from; r < to; r++, inAt += bytes, outAt += bytes) {
        long nextAt = r + 1 < to ? inAt + bytes : NO_NEXT;
        if (op != CROSS_ENTROPY) {
          m = forwardRowAhead(cols, in, inAt, m, out, outAt, op == LOG_FORWARD, nextAt);
          continue;
        }
        int label = aux.get(JAVA_INT_UNALIGNED, 4 * (auxOffset + r));
        if (label == ignoreIndex) {
          losses[r] = crossEntropyRow(cols, in, inAt, label, ignoreIndex, count, out, outAt);
          m = nextAt < 0 ? Float.NaN : rowMax(cols, in, nextAt);
          continue;
        }
        // As in crossEntropyRow: the target first, before the exponentials may overwrite it.
        float target = in.get(JAVA_FLOAT_UNALIGNED, inAt + 4L * label);
        long both = expSumAhead(cols, in, inAt, m, out, outAt, nextAt);
        losses[r] = crossEntropyLoss(cols, m, target, sumOf(both), label, count, out, outAt);
        m = maxOf(both);
      }
    }

    private void runRow(int r, int label, MemorySegment in, long inAt, MemorySegment aux, long auxAt,
        MemorySegment out, long outAt) {
      switch (op) {
        case FORWARD -> forwardRow(cols, in, inAt, out, outAt, false);
        case LOG_FORWARD -> forwardRow(cols, in, inAt, out, outAt, true);
        case BACKWARD -> backwardRow(cols, in, inAt, aux, auxAt, out, outAt);
        case LOG_BACKWARD -> logBackwardRow(cols, in, inAt, aux, auxAt, out, outAt);
        default -> losses[r] = crossEntropyRow(cols, in, inAt, label, ignoreIndex, count, out, outAt);
      }
    }
  }

  /**
   * This thread's native scratch of at least {@code bytes}, for rows of segments that are not plain
   * native memory. It grows to the widest rows seen and is then reused.
   */
  private static MemorySegment rowStage(long bytes) {
    MemorySegment stage = ROW_STAGE.get();
    if (stage.byteSize() < bytes) {
      stage = Arena.ofAuto().allocate(bytes, 64);
      ROW_STAGE.set(stage);
    }
    return stage;
  }

  private static final ThreadLocal<MemorySegment> ROW_STAGE = ThreadLocal.withInitial(() -> MemorySegment.NULL);

  /** Validates shapes and buffers: {@code in} is read, {@code out} written, {@code grad} (if any) read. */
  private static void check(int rows, int cols, MemorySegment in, long inOffset, String inName,
      MemorySegment out, long outOffset, String outName, MemorySegment grad, long gradOffset, String gradName) {
    Checks.nonNegative(rows, "rows");
    Checks.nonNegative(cols, "cols");
    Checks.readable(in, inName);
    Checks.writable(out, outName);
    Checks.extent(inName, inOffset, rows, cols, Math.max(1, cols), Checks.floats(in));
    Checks.extent(outName, outOffset, rows, cols, Math.max(1, cols), Checks.floats(out));
    if (gradName != null) {
      Checks.readable(grad, gradName);
      Checks.extent(gradName, gradOffset, rows, cols, Math.max(1, cols), Checks.floats(grad));
    }
  }

  /*
   * Each pass over a row is a method of its own that hands on only scalars. One method holding all
   * three passes was too big for C1 ("out of virtual registers"), stayed in tier-2 code, where the
   * Vector API is not intrinsified, and allocated 50 MB per 1024x1000 call.
   */
  private static void forwardRow(int cols, MemorySegment x, long xAt, MemorySegment out, long outAt, boolean log) {
    forwardRowAhead(cols, x, xAt, rowMax(cols, x, xAt), out, outAt, log, NO_NEXT);
  }

  /**
   * {@link #forwardRow} given the row's maximum m; with {@code nextAt >= 0} it returns the maximum
   * of the row there, taken in the exponential pass (see {@link #expSumAhead}).
   */
  private static float forwardRowAhead(int cols, MemorySegment x, long xAt, float m, MemorySegment out, long outAt,
      boolean log, long nextAt) {
    long both = expSumAhead(cols, x, xAt, m, log ? null : out, outAt, nextAt);
    float s = sumOf(both);
    if (log) {
      shiftLog(cols, x, xAt, m, (float) Math.log(s), out, outAt);
    } else {
      divide(cols, out, outAt, s);
    }
    return maxOf(both);
  }

  /*
   * Row tails. The last cols % LANES floats of a row are copied into a per-thread vector padded
   * with -inf (the identity of max, and exponentiated to 0), and the same whole-vector loops run
   * over it. Masked loads and stores of the tails measured 0.8 ns per float of a 1000-float row
   * (the whole row's softmax costs 0.9 ns per float without a tail).
   */
  private static final ThreadLocal<MemorySegment> STAGE =
      ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(8L * LANES, 64));

  /** This thread's two stage vectors: the tail then -inf at byte 0, and room for results after. */
  private static MemorySegment stage(MemorySegment x, long at, int count) {
    MemorySegment stage = STAGE.get();
    MemorySegment.copy(x, at, stage, 0, 4L * count);
    for (int i = count; i < LANES; i++) {
      stage.set(JAVA_FLOAT_UNALIGNED, 4L * i, Float.NEGATIVE_INFINITY);
    }
    return stage;
  }

  /** The row maximum; MAX propagates NaN, as Math.max does. */
  private static float rowMax(int cols, MemorySegment x, long xAt) {
    int whole = cols - cols % LANES;
    float m = maxOf(whole, x, xAt);
    if (whole < cols) {
      m = Math.max(m, maxOf(LANES, stage(x, xAt + 4L * whole, cols - whole), 0));
    }
    return m;
  }

  /**
   * The maximum of {@code n} floats, n a multiple of LANES.
   *
   * <p>Four running maxima, not one: Java's MAX (NaN wins, +0 over -0) is five dependent
   * instructions on AVX2 (two blends, vmaxps, an unordered compare, a blend), so one accumulator
   * made the pass latency-bound, about 7 cycles per vector. The result is the same whatever the
   * grouping, since that MAX is associative and commutative.
   */
  private static float maxOf(int n, MemorySegment x, long xAt) {
    if (x.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    FloatVector m0 = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
    FloatVector m1 = m0;
    FloatVector m2 = m0;
    FloatVector m3 = m0;
    int i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
      long at = xAt + 4L * i;
      m0 = m0.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, at, ORDER));
      m1 = m1.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, at + 4L * LANES, ORDER));
      m2 = m2.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, at + 8L * LANES, ORDER));
      m3 = m3.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, at + 12L * LANES, ORDER));
    }
    for (; i < n; i += LANES) {
      m0 = m0.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER));
    }
    return m0.lanewise(VectorOperators.MAX, m1).lanewise(VectorOperators.MAX, m2.lanewise(VectorOperators.MAX, m3))
        .reduceLanes(VectorOperators.MAX);
  }

  /**
   * {@code sum_i exp(x_i - m)}, also storing the exponentials in {@code out} unless it is null.
   * The row's whole vectors and its staged tail go through the same loop, so the exponential has
   * one call site (a second one, cold, was not inlined and boxed its vectors: 190 B per row).
   */
  private static float expSum(int cols, MemorySegment x, long xAt, float m, MemorySegment out, long outAt) {
    int whole = cols - cols % LANES;
    float sum = expSumOf(whole, x, xAt, m, out, outAt);
    if (whole < cols) {
      sum += expSumTail(cols, whole, x, xAt, m, out, outAt);
    }
    return sum;
  }

  /** {@link #expSum} of the row's last {@code cols - whole} floats, through the staged vector. */
  private static float expSumTail(int cols, int whole, MemorySegment x, long xAt, float m, MemorySegment out,
      long outAt) {
    MemorySegment stage = stage(x, xAt + 4L * whole, cols - whole);
    float sum = expSumOf(LANES, stage, 0, m, stage, 4L * LANES);
    if (out != null) {
      MemorySegment.copy(stage, 4L * LANES, out, outAt + 4L * whole, 4L * (cols - whole));
    }
    return sum;
  }

  /** {@code nextAt} of a row that has no next row to look at. */
  private static final long NO_NEXT = -1;

  /**
   * {@link #expSum}, and with {@code nextAt >= 0} the maximum of the {@code cols} floats at byte
   * {@code nextAt}, taken in the same loop; the two come back as the two halves of a long
   * ({@link #sumOf}, {@link #maxOf(long)}), so that no vector and no array leaves the loop.
   *
   * <p>Why: a long row (see {@link Rows#LONG_ROW}) does not stay in L1 or L2 between its
   * passes, and row by row the maximum pass only waited for memory while the exponential pass only
   * computed. Taking the next row's maximum in this row's exponential loop overlaps the two. The
   * maximum is exact in any order, and the sum keeps its order, so the results keep their bits.
   * Measured at 64x32000, old and new alternating call by call in one JVM, median speed new/old:
   * one thread, forward 1.11, cross-entropy 1.09-1.13, log-softmax 1.07; two threads 1.01-1.04.
   * Rows of 1000 floats, which stay in L1 between passes, take the plain loops (1.00).
   */
  private static long expSumAhead(int cols, MemorySegment x, long xAt, float m, MemorySegment out, long outAt,
      long nextAt) {
    if (nextAt < 0) {
      return pack(expSum(cols, x, xAt, m, out, outAt), Float.NaN);
    }
    int whole = cols - cols % LANES;
    long both = expSumMaxOf(whole, x, xAt, m, out, outAt, nextAt);
    float sum = sumOf(both);
    float next = maxOf(both);
    if (whole < cols) {
      sum += expSumTail(cols, whole, x, xAt, m, out, outAt);
      next = Math.max(next, maxOf(LANES, stage(x, nextAt + 4L * whole, cols - whole), 0));
    }
    return pack(sum, next);
  }

  private static long pack(float sum, float max) {
    return (long) Float.floatToRawIntBits(sum) << 32 | (Float.floatToRawIntBits(max) & 0xffffffffL);
  }

  private static float sumOf(long both) {
    return Float.intBitsToFloat((int) (both >>> 32));
  }

  private static float maxOf(long both) {
    return Float.intBitsToFloat((int) both);
  }

  /** The loop of {@link #expSumAhead}: {@link #expSumOf}'s, plus a running maximum of the next row. */
  private static long expSumMaxOf(int n, MemorySegment x, long xAt, float m, MemorySegment out, long outAt,
      long nextAt) {
    if (x.getClass() != NATIVE || out != null && out.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    // As in expSumOf, including why a non-finite m is replaced by NaN.
    FloatVector vm = FloatVector.broadcast(SPECIES, Float.isFinite(m) ? m : Float.NaN);
    FloatVector sum = FloatVector.zero(SPECIES);
    FloatVector max = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
    for (int i = 0; i < n; i += LANES) {
      FloatVector e = VectorMath.expClampedNonPositive(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).sub(vm));
      if (out != null) {
        e.intoMemorySegment(out, outAt + 4L * i, ORDER);
      }
      sum = sum.add(e);
      max = max.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, nextAt + 4L * i, ORDER));
    }
    return pack(FloatLanes.sum(sum), max.reduceLanes(VectorOperators.MAX));
  }

  /** {@code sum exp(x_i - m)} over n floats, n a multiple of LANES; exponentials into out if not null. */
  private static float expSumOf(int n, MemorySegment x, long xAt, float m, MemorySegment out, long outAt) {
    if (x.getClass() != NATIVE || out != null && out.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    // With m finite, every x - m is in [-inf, 0], the clamped exponential's domain. A NaN or an
    // infinite m makes the row NaN (see the class comment): subtracting a NaN then gives every lane
    // a NaN, which the exponential keeps unless its sign bit is set (the lane's own NaN can be), and
    // such a lane's 0 leaves the sum NaN, or 0 if every lane was one, and the outputs e/s are NaN
    // either way (0 * inf), as are the log-softmax's and the loss's.
    FloatVector vm = FloatVector.broadcast(SPECIES, Float.isFinite(m) ? m : Float.NaN);
    FloatVector sum = FloatVector.zero(SPECIES);
    for (int i = 0; i < n; i += LANES) {
      FloatVector e = VectorMath.expClampedNonPositive(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).sub(vm));
      if (out != null) {
        e.intoMemorySegment(out, outAt + 4L * i, ORDER);
      }
      sum = sum.add(e);
    }
    return FloatLanes.sum(sum);
  }

  /**
   * {@code out_i *= 1/s}. A multiply by the reciprocal rather than a divide: vector division
   * costs about as much as the rest of the forward pass. It adds one rounding, which the bound in
   * the class comment already covers for n >= 2 (for n = 1 the result is exactly 1).
   */
  private static void divide(int cols, MemorySegment out, long outAt, float s) {
    if (out.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    float reciprocal = 1f / s;
    FloatVector vr = FloatVector.broadcast(SPECIES, reciprocal);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, out, outAt + 4L * i, ORDER).mul(vr)
          .intoMemorySegment(out, outAt + 4L * i, ORDER);
    }
    // The tail one float at a time: the same single rounding as a vector lane (see "Row tails").
    for (int i = whole; i < cols; i++) {
      long at = outAt + 4L * i;
      out.set(JAVA_FLOAT_UNALIGNED, at, out.get(JAVA_FLOAT_UNALIGNED, at) * reciprocal);
    }
  }

  /** {@code out_i = (x_i - m) - logSum}; the tail one float at a time, rounded as a lane is. */
  private static void shiftLog(int cols, MemorySegment x, long xAt, float m, float logSum, MemorySegment out,
      long outAt) {
    if (x.getClass() != NATIVE || out.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector vm = FloatVector.broadcast(SPECIES, m);
    FloatVector vl = FloatVector.broadcast(SPECIES, logSum);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).sub(vm).sub(vl)
          .intoMemorySegment(out, outAt + 4L * i, ORDER);
    }
    for (int i = whole; i < cols; i++) {
      out.set(JAVA_FLOAT_UNALIGNED, outAt + 4L * i, (x.get(JAVA_FLOAT_UNALIGNED, xAt + 4L * i) - m) - logSum);
    }
  }

  /** One staged row of the backward; unstaged rows go through {@link Rows#backwardRows}. */
  private static void backwardRow(int cols, MemorySegment y, long yAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    float dot = dotBehindScaled(cols, y, yAt, dy, dyAt, 0f, dx, dxAt, 0, false, DOT_LANES.get());
    scaledDifference(cols, y, yAt, dy, dyAt, dot, dx, dxAt);
  }

  private static void logBackwardRow(int cols, MemorySegment z, long zAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    float sum = sum(cols, dy, dyAt);
    minusProbabilityTimes(cols, z, zAt, dy, dyAt, sum, dx, dxAt);
  }

  /**
   * Writes {@code dx_i = y_i (dy_i - dot)} for the row at (yAt, dyAt, dxAt) if {@code scale}, and
   * returns {@code sum_i dy_i y_i} of the row {@code next} bytes further (0: the same row). The
   * only place the backward's dot is summed, so staged and unstaged rows get the same bits.
   * {@code lanes} is this thread's {@link #DOT_LANES}; the row loop looks it up once, not per row.
   */
  private static float dotBehindScaled(int cols, MemorySegment y, long yAt, MemorySegment dy, long dyAt, float dot,
      MemorySegment dx, long dxAt, long next, boolean scale, float[] lanes) {
    if (y.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector vdot = FloatVector.broadcast(SPECIES, dot);
    FloatVector acc = FloatVector.zero(SPECIES);
    for (int i = 0; i < whole; i += LANES) {
      long at = 4L * i;
      if (scale) {
        FloatVector yv = FloatVector.fromMemorySegment(SPECIES, y, yAt + at, ORDER);
        FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + at, ORDER);
        yv.mul(g.sub(vdot)).intoMemorySegment(dx, dxAt + at, ORDER);
      }
      acc = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + next + at, ORDER)
          .fma(FloatVector.fromMemorySegment(SPECIES, y, yAt + next + at, ORDER), acc);
    }
    acc.intoArray(lanes, 0);
    if (whole < cols) {
      dotBehindScaledTail(cols, whole, y, yAt, dy, dyAt, dot, dx, dxAt, next, scale, lanes);
    }
    return FloatLanes.sumStored(lanes);
  }

  /**
   * Per thread, the lanes of {@link #dotBehindScaled}'s accumulator on their way to their sum.
   *
   * <p>Why the accumulator leaves through an array, and the tail is a method of its own: on 512-bit
   * vectors the masked tail made dotBehindScaled too big for both compilers. C1 gave up on it ("out
   * of virtual registers in linear scan"), which left it in tier-2 code where every vector is an
   * object; and C2 ran out of its inlining budget before {@link FloatLanes#sum}, so the vector
   * passed to that call was boxed, once a row. Measured on a Zen 5 machine, 1024x1000 (16 lanes
   * leave a tail of 8 per row), one thread: 8 ms and 43 MB a call, or 96 bytes a row, against
   * about 0.2 ms and nothing now. The lanes are summed in the order of FloatLanes.sum, so the bits
   * are the same.
   */
  private static final ThreadLocal<float[]> DOT_LANES = ThreadLocal.withInitial(() -> new float[LANES]);

  /**
   * The masked tail of {@link #dotBehindScaled}: writes its dx if {@code scale}, and adds its
   * products into the accumulator's lanes.
   */
  private static void dotBehindScaledTail(int cols, int whole, MemorySegment y, long yAt, MemorySegment dy,
      long dyAt, float dot, MemorySegment dx, long dxAt, long next, boolean scale, float[] lanes) {
    VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
    long at = 4L * whole;
    if (scale) {
      FloatVector yv = FloatVector.fromMemorySegment(SPECIES, y, yAt + at, ORDER, tail);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + at, ORDER, tail);
      yv.mul(g.sub(FloatVector.broadcast(SPECIES, dot))).intoMemorySegment(dx, dxAt + at, ORDER, tail);
    }
    FloatVector.fromMemorySegment(SPECIES, dy, dyAt + next + at, ORDER, tail)
        .fma(FloatVector.fromMemorySegment(SPECIES, y, yAt + next + at, ORDER, tail), FloatVector.fromArray(SPECIES, lanes, 0))
        .intoArray(lanes, 0);
  }

  /** {@code sum_i a_i}. */
  private static float sum(int cols, MemorySegment a, long aAt) {
    if (a.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector acc = FloatVector.zero(SPECIES);
    for (int i = 0; i < whole; i += LANES) {
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * i, ORDER));
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * whole, ORDER, tail));
    }
    return FloatLanes.sum(acc);
  }

  /** {@code dx_i = y_i (dy_i - dot)}. */
  private static void scaledDifference(int cols, MemorySegment y, long yAt, MemorySegment dy, long dyAt, float dot,
      MemorySegment dx, long dxAt) {
    if (y.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector vdot = FloatVector.broadcast(SPECIES, dot);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector yv = FloatVector.fromMemorySegment(SPECIES, y, yAt + 4L * i, ORDER);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER);
      yv.mul(g.sub(vdot)).intoMemorySegment(dx, dxAt + 4L * i, ORDER);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector yv = FloatVector.fromMemorySegment(SPECIES, y, yAt + 4L * whole, ORDER, tail);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * whole, ORDER, tail);
      yv.mul(g.sub(vdot)).intoMemorySegment(dx, dxAt + 4L * whole, ORDER, tail);
    }
  }

  /** {@code dx_i = dy_i - exp(z_i) sum}, as one fused multiply-add; masked steps, as in {@link #expSum}. */
  private static void minusProbabilityTimes(int cols, MemorySegment z, long zAt, MemorySegment dy, long dyAt,
      float sum, MemorySegment dx, long dxAt) {
    if (z.getClass() != NATIVE || dy.getClass() != NATIVE || dx.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    FloatVector vsum = FloatVector.broadcast(SPECIES, sum);
    for (int i = 0; i < cols; i += LANES) {
      VectorMask<Float> lanes = SPECIES.indexInRange(i, cols);
      FloatVector p = VectorMath.expUpTo88(FloatVector.fromMemorySegment(SPECIES, z, zAt + 4L * i, ORDER, lanes));
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER, lanes);
      p.neg().fma(vsum, g).intoMemorySegment(dx, dxAt + 4L * i, ORDER, lanes);
    }
  }

  /** {@code sum_i t_i (m - x_i)}. */
  private static float weightedGap(int cols, MemorySegment t, long tAt, MemorySegment x, long xAt, float m) {
    if (t.getClass() != NATIVE || x.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector vm = FloatVector.broadcast(SPECIES, m);
    FloatVector acc = FloatVector.zero(SPECIES);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector gap = vm.sub(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER));
      acc = FloatVector.fromMemorySegment(SPECIES, t, tAt + 4L * i, ORDER).fma(gap, acc);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector gap = vm.sub(FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * whole, ORDER, tail));
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, t, tAt + 4L * whole, ORDER, tail).mul(gap), tail);
    }
    return FloatLanes.sum(acc);
  }

  /** {@code d_i = e_i a - t_i b}, in place over the exponentials e in d. */
  private static void scaledMinus(int cols, MemorySegment d, long dAt, float a, MemorySegment t, long tAt, float b) {
    if (d.getClass() != NATIVE || t.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    int whole = cols - cols % LANES;
    FloatVector va = FloatVector.broadcast(SPECIES, a);
    FloatVector vb = FloatVector.broadcast(SPECIES, -b);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector tb = FloatVector.fromMemorySegment(SPECIES, t, tAt + 4L * i, ORDER).mul(vb);
      FloatVector.fromMemorySegment(SPECIES, d, dAt + 4L * i, ORDER).fma(va, tb).intoMemorySegment(d, dAt + 4L * i, ORDER);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector tb = FloatVector.fromMemorySegment(SPECIES, t, tAt + 4L * whole, ORDER, tail).mul(vb);
      FloatVector.fromMemorySegment(SPECIES, d, dAt + 4L * whole, ORDER, tail).fma(va, tb)
          .intoMemorySegment(d, dAt + 4L * whole, ORDER, tail);
    }
  }
}
