package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax and log-softmax over the last axis of a row-major {@code rows x cols} float matrix,
 * forward and backward.
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

  private Softmax() {}

  /** {@code y = softmax(x)} row by row. */
  public static void forward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    check(rows, cols, x, xOffset, "x", y, yOffset, "y", null, 0, null);
    forwardRows(rows, cols, x, xOffset, y, yOffset, false);
  }

  /** {@code z = log_softmax(x)} row by row. */
  public static void logForward(int rows, int cols, MemorySegment x, long xOffset, MemorySegment z, long zOffset) {
    check(rows, cols, x, xOffset, "x", z, zOffset, "z", null, 0, null);
    forwardRows(rows, cols, x, xOffset, z, zOffset, true);
  }

  private static void forwardRows(int rows, int cols, MemorySegment x, long xOffset, MemorySegment out,
      long outOffset, boolean log) {
    for (int r = 0; r < rows; r++) {
      long row = (long) r * cols;
      forwardRow(cols, x, (xOffset + row) * 4, out, (outOffset + row) * 4, log);
    }
  }

  /** Softmax backward from the forward output y: {@code dx_i = y_i (dy_i - sum_j dy_j y_j)}. */
  public static void backward(int rows, int cols, MemorySegment y, long yOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    check(rows, cols, y, yOffset, "y", dx, dxOffset, "dx", dy, dyOffset, "dy");
    for (int r = 0; r < rows; r++) {
      long row = (long) r * cols;
      backwardRow(cols, y, (yOffset + row) * 4, dy, (dyOffset + row) * 4, dx, (dxOffset + row) * 4);
    }
  }

  /** Log-softmax backward from the forward output z: {@code dx_i = dy_i - exp(z_i) sum_j dy_j}. */
  public static void logBackward(int rows, int cols, MemorySegment z, long zOffset, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    check(rows, cols, z, zOffset, "z", dx, dxOffset, "dx", dy, dyOffset, "dy");
    for (int r = 0; r < rows; r++) {
      long row = (long) r * cols;
      logBackwardRow(cols, z, (zOffset + row) * 4, dy, (dyOffset + row) * 4, dx, (dxOffset + row) * 4);
    }
  }

  /** {@link #forward(int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void forward(int rows, int cols, float[] x, int xOffset, float[] y, int yOffset) {
    forward(rows, cols, segment(x, "x"), xOffset, segment(y, "y"), yOffset);
  }

  /** {@link #logForward(int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void logForward(int rows, int cols, float[] x, int xOffset, float[] z, int zOffset) {
    logForward(rows, cols, segment(x, "x"), xOffset, segment(z, "z"), zOffset);
  }

  /** {@link #backward(int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void backward(int rows, int cols, float[] y, int yOffset, float[] dy, int dyOffset,
      float[] dx, int dxOffset) {
    backward(rows, cols, segment(y, "y"), yOffset, segment(dy, "dy"), dyOffset, segment(dx, "dx"), dxOffset);
  }

  /** {@link #logBackward(int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void logBackward(int rows, int cols, float[] z, int zOffset, float[] dy, int dyOffset,
      float[] dx, int dxOffset) {
    logBackward(rows, cols, segment(z, "z"), zOffset, segment(dy, "dy"), dyOffset, segment(dx, "dx"), dxOffset);
  }

  private static MemorySegment segment(float[] array, String name) {
    return MemorySegment.ofArray(Checks.notNull(array, name));
  }

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
    float m = rowMax(cols, x, xAt);
    float s = expSum(cols, x, xAt, m, log ? null : out, outAt);
    if (log) {
      shiftLog(cols, x, xAt, m, (float) Math.log(s), out, outAt);
    } else {
      divide(cols, out, outAt, s);
    }
  }

  /** The row maximum; MAX propagates NaN, as Math.max does. */
  private static float rowMax(int cols, MemorySegment x, long xAt) {
    int whole = cols - cols % LANES;
    FloatVector minusInf = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
    FloatVector max = minusInf;
    for (int i = 0; i < whole; i += LANES) {
      max = max.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER));
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector last = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * whole, ORDER, tail);
      max = max.lanewise(VectorOperators.MAX, minusInf.blend(last, tail));
    }
    return max.reduceLanes(VectorOperators.MAX);
  }

  /**
   * {@code sum_i exp(x_i - m)}, also storing the exponentials in {@code out} unless it is null.
   *
   * <p>The tail is a branch inside the one loop, not a second loop after it: the exp must have a
   * single, hot call site. At a separate tail call site, run once per row, C2 did not inline it
   * and the vectors crossing that call were boxed (190 B per 1000-float row). Masking every step
   * instead cost a quarter of the speed.
   */
  private static float expSum(int cols, MemorySegment x, long xAt, float m, MemorySegment out, long outAt) {
    FloatVector vm = FloatVector.broadcast(SPECIES, m);
    FloatVector sum = FloatVector.zero(SPECIES);
    VectorMask<Float> tail = SPECIES.indexInRange(cols - cols % LANES, cols);
    for (int i = 0; i < cols; i += LANES) {
      boolean whole = i + LANES <= cols;
      FloatVector v = whole ? FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER, tail);
      FloatVector e = VectorMath.expUpTo88(v.sub(vm));
      if (whole) {
        if (out != null) {
          e.intoMemorySegment(out, outAt + 4L * i, ORDER);
        }
        sum = sum.add(e);
      } else {
        if (out != null) {
          e.intoMemorySegment(out, outAt + 4L * i, ORDER, tail);
        }
        sum = sum.add(e, tail);
      }
    }
    return sum.reduceLanes(VectorOperators.ADD);
  }

  /**
   * {@code out_i *= 1/s}. A multiply by the reciprocal rather than a divide: vector division
   * costs about as much as the rest of the forward pass. It adds one rounding, which the bound in
   * the class comment already covers for n >= 2 (for n = 1 the result is exactly 1).
   */
  private static void divide(int cols, MemorySegment out, long outAt, float s) {
    int whole = cols - cols % LANES;
    FloatVector vr = FloatVector.broadcast(SPECIES, 1f / s);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, out, outAt + 4L * i, ORDER).mul(vr)
          .intoMemorySegment(out, outAt + 4L * i, ORDER);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector.fromMemorySegment(SPECIES, out, outAt + 4L * whole, ORDER, tail).mul(vr)
          .intoMemorySegment(out, outAt + 4L * whole, ORDER, tail);
    }
  }

  /** {@code out_i = (x_i - m) - logSum}. */
  private static void shiftLog(int cols, MemorySegment x, long xAt, float m, float logSum, MemorySegment out,
      long outAt) {
    int whole = cols - cols % LANES;
    FloatVector vm = FloatVector.broadcast(SPECIES, m);
    FloatVector vl = FloatVector.broadcast(SPECIES, logSum);
    for (int i = 0; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER).sub(vm).sub(vl)
          .intoMemorySegment(out, outAt + 4L * i, ORDER);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * whole, ORDER, tail).sub(vm).sub(vl)
          .intoMemorySegment(out, outAt + 4L * whole, ORDER, tail);
    }
  }

  private static void backwardRow(int cols, MemorySegment y, long yAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    float dot = dot(cols, dy, dyAt, y, yAt);
    scaledDifference(cols, y, yAt, dy, dyAt, dot, dx, dxAt);
  }

  private static void logBackwardRow(int cols, MemorySegment z, long zAt, MemorySegment dy, long dyAt,
      MemorySegment dx, long dxAt) {
    float sum = sum(cols, dy, dyAt);
    minusProbabilityTimes(cols, z, zAt, dy, dyAt, sum, dx, dxAt);
  }

  /** {@code sum_i a_i b_i}. */
  private static float dot(int cols, MemorySegment a, long aAt, MemorySegment b, long bAt) {
    int whole = cols - cols % LANES;
    FloatVector acc = FloatVector.zero(SPECIES);
    for (int i = 0; i < whole; i += LANES) {
      acc = FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * i, ORDER)
          .fma(FloatVector.fromMemorySegment(SPECIES, b, bAt + 4L * i, ORDER), acc);
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      acc = FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * whole, ORDER, tail)
          .fma(FloatVector.fromMemorySegment(SPECIES, b, bAt + 4L * whole, ORDER, tail), acc);
    }
    return acc.reduceLanes(VectorOperators.ADD);
  }

  /** {@code sum_i a_i}. */
  private static float sum(int cols, MemorySegment a, long aAt) {
    int whole = cols - cols % LANES;
    FloatVector acc = FloatVector.zero(SPECIES);
    for (int i = 0; i < whole; i += LANES) {
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * i, ORDER));
    }
    if (whole < cols) {
      VectorMask<Float> tail = SPECIES.indexInRange(whole, cols);
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, a, aAt + 4L * whole, ORDER, tail));
    }
    return acc.reduceLanes(VectorOperators.ADD);
  }

  /** {@code dx_i = y_i (dy_i - dot)}. */
  private static void scaledDifference(int cols, MemorySegment y, long yAt, MemorySegment dy, long dyAt, float dot,
      MemorySegment dx, long dxAt) {
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
    FloatVector vsum = FloatVector.broadcast(SPECIES, sum);
    for (int i = 0; i < cols; i += LANES) {
      VectorMask<Float> lanes = SPECIES.indexInRange(i, cols);
      FloatVector p = VectorMath.expUpTo88(FloatVector.fromMemorySegment(SPECIES, z, zAt + 4L * i, ORDER, lanes));
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4L * i, ORDER, lanes);
      p.neg().fma(vsum, g).intoMemorySegment(dx, dxAt + 4L * i, ORDER, lanes);
    }
  }
}
