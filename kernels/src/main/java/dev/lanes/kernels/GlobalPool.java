package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Global pooling: one value per (n, c) plane of an {@code [N, C, P]} tensor, P = H*W for images
 * ({@code [N, C, H, W]}) or P = L for sequences ({@code [N, C, L]}, where global max pooling is the
 * max-over-time pooling of a TextCNN). Outputs are {@code [N, C]}, dense row-major float32.
 *
 * <ul>
 *   <li>Average: {@code y = sum(plane) / P}; backward spreads {@code dy / P} over the plane.
 *   <li>Max: the plane's maximum, and optionally its position (int32, 0..P-1). Ties go to the first
 *       maximum; a NaN in the plane gives NaN with the position of the last NaN, as {@link Pool2d}
 *       does. Backward puts {@code dy} at the recorded position and zero elsewhere.
 * </ul>
 * Backward passes overwrite dx. Every call checks its buffers first; nothing is written when one
 * is wrong.
 */
public final class GlobalPool {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private GlobalPool() {}

  /** {@code y[n, c] = mean of x[n, c, :]}. */
  public static void avgForward(int batch, int channels, int positions, MemorySegment x, long xOffset,
      MemorySegment y, long yOffset) {
    check(batch, channels, positions, x, xOffset, false, y, yOffset, true);
    for (long p = 0; p < (long) batch * channels; p++) {
      float sum = ChannelSums.sum(x, 4 * (xOffset + p * positions), positions);
      y.set(JAVA_FLOAT_UNALIGNED, 4 * (yOffset + p), sum / positions);
    }
  }

  /** {@code dx[n, c, :] = dy[n, c] / P}. */
  public static void avgBackward(int batch, int channels, int positions, MemorySegment dy, long dyOffset,
      MemorySegment dx, long dxOffset) {
    check(batch, channels, positions, dx, dxOffset, true, dy, dyOffset, false);
    for (long p = 0; p < (long) batch * channels; p++) {
      float share = dy.get(JAVA_FLOAT_UNALIGNED, 4 * (dyOffset + p)) / positions;
      SegmentLoops.fill(dx, 4 * (dxOffset + p * positions), positions, share);
    }
  }

  /** {@code y[n, c] = max of x[n, c, :]}, its position into {@code argmax} unless that is null. */
  public static void maxForward(int batch, int channels, int positions, MemorySegment x, long xOffset,
      MemorySegment y, long yOffset, MemorySegment argmax, long argmaxOffset) {
    check(batch, channels, positions, x, xOffset, false, y, yOffset, true);
    if (argmax != null) {
      Checks.writable(argmax, "argmax");
      Checks.tensor("argmax", "[N,C]", batch, channels, -1, -1, argmaxOffset, Checks.floats(argmax));
    }
    for (long p = 0; p < (long) batch * channels; p++) {
      long at = 4 * (xOffset + p * positions);
      float max = max(x, at, positions);
      y.set(JAVA_FLOAT_UNALIGNED, 4 * (yOffset + p), max);
      if (argmax != null) {
        argmax.set(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + p), position(x, at, positions, max));
      }
    }
  }

  /** {@code dx[n, c, argmax[n, c]] = dy[n, c]}, zero elsewhere. */
  public static void maxBackward(int batch, int channels, int positions, MemorySegment dy, long dyOffset,
      MemorySegment argmax, long argmaxOffset, MemorySegment dx, long dxOffset) {
    check(batch, channels, positions, dx, dxOffset, true, dy, dyOffset, false);
    Checks.readable(argmax, "argmax");
    Checks.tensor("argmax", "[N,C]", batch, channels, -1, -1, argmaxOffset, Checks.floats(argmax));
    long planes = (long) batch * channels;
    for (long p = 0; p < planes; p++) {
      int i = argmax.get(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + p));
      if (i < 0 || i >= positions) {
        throw new IndexOutOfBoundsException("argmax[" + p + "] = " + i + " is outside its plane of " + positions);
      }
    }
    for (long p = 0; p < planes; p++) {
      long plane = 4 * (dxOffset + p * positions);
      SegmentLoops.fill(dx, plane, positions, 0f);
      int i = argmax.get(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + p));
      dx.set(JAVA_FLOAT_UNALIGNED, plane + 4L * i, dy.get(JAVA_FLOAT_UNALIGNED, 4 * (dyOffset + p)));
    }
  }

  /** Max-over-time pooling of {@code [N, C, L]} sequences: {@link #maxForward} with P = L. */
  public static void maxOverTime(int batch, int channels, int length, MemorySegment x, long xOffset,
      MemorySegment y, long yOffset, MemorySegment argmax, long argmaxOffset) {
    maxForward(batch, channels, length, x, xOffset, y, yOffset, argmax, argmaxOffset);
  }

  /** The backward of {@link #maxOverTime}. */
  public static void maxOverTimeBackward(int batch, int channels, int length, MemorySegment dy, long dyOffset,
      MemorySegment argmax, long argmaxOffset, MemorySegment dx, long dxOffset) {
    maxBackward(batch, channels, length, dy, dyOffset, argmax, argmaxOffset, dx, dxOffset);
  }

  /** The maximum of n floats, NaN if any is NaN. */
  private static float max(MemorySegment s, long at, int n) {
    FloatVector best = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
    VectorMask<Float> nan = SPECIES.maskAll(false);
    int i = 0;
    for (int whole = n - n % LANES; i < whole; i += LANES) {
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, s, at + 4L * i, ORDER);
      nan = nan.or(v.test(VectorOperators.IS_NAN));
      best = best.max(v);
    }
    if (i < n) {
      VectorMask<Float> tail = SPECIES.indexInRange(i, n);
      FloatVector v = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY)
          .blend(FloatVector.fromMemorySegment(SPECIES, s, at + 4L * i, ORDER, tail), tail);
      nan = nan.or(v.test(VectorOperators.IS_NAN));
      best = best.max(v);
    }
    return nan.anyTrue() ? Float.NaN : best.reduceLanes(VectorOperators.MAX);
  }

  /** Position of the first element equal to {@code max}, or of the last NaN when max is NaN. */
  private static int position(MemorySegment s, long at, int n, float max) {
    if (Float.isNaN(max)) {
      for (int i = n - 1; i >= 0; i--) {
        if (Float.isNaN(s.get(JAVA_FLOAT_UNALIGNED, at + 4L * i))) {
          return i;
        }
      }
    }
    for (int i = 0; i < n; i++) {
      if (s.get(JAVA_FLOAT_UNALIGNED, at + 4L * i) == max) {
        return i;
      }
    }
    return 0; // every element is -inf: the first one, as the window scan would pick
  }

  private static void check(int batch, int channels, int positions, MemorySegment planes, long planesOffset,
      boolean planesWritten, MemorySegment values, long valuesOffset, boolean valuesWritten) {
    Checks.positive(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(positions, "positions");
    String planeName = planesWritten ? "dx" : "x";
    String valueName = valuesWritten ? "y" : "dy";
    Checks.accessible(planes, planeName, planesWritten);
    Checks.accessible(values, valueName, valuesWritten);
    Checks.tensor(planeName, "[N,C,P]", batch, channels, positions, -1, planesOffset, Checks.floats(planes));
    Checks.tensor(valueName, "[N,C]", batch, channels, -1, -1, valuesOffset, Checks.floats(values));
  }

  // ---- float[] overloads: the same calls on heap arrays (offsets in elements) ----

  /** {@link #avgForward(int, int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void avgForward(int batch, int channels, int positions, float[] x, int xOffset, float[] y,
      int yOffset) {
    avgForward(batch, channels, positions, Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset);
  }

  /** {@link #avgBackward(int, int, int, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void avgBackward(int batch, int channels, int positions, float[] dy, int dyOffset, float[] dx,
      int dxOffset) {
    avgBackward(batch, channels, positions, Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset);
  }

  /** {@link #maxForward(int, int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays; argmax may be null. */
  public static void maxForward(int batch, int channels, int positions, float[] x, int xOffset, float[] y,
      int yOffset, int[] argmax, int argmaxOffset) {
    maxForward(batch, channels, positions, Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset,
        argmax == null ? null : MemorySegment.ofArray(argmax), argmaxOffset);
  }

  /** {@link #maxBackward(int, int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void maxBackward(int batch, int channels, int positions, float[] dy, int dyOffset, int[] argmax,
      int argmaxOffset, float[] dx, int dxOffset) {
    maxBackward(batch, channels, positions, Checks.array(dy, "dy"), dyOffset,
        MemorySegment.ofArray(Checks.notNull(argmax, "argmax")), argmaxOffset, Checks.array(dx, "dx"), dxOffset);
  }

  /** {@link #maxOverTime(int, int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void maxOverTime(int batch, int channels, int length, float[] x, int xOffset, float[] y, int yOffset,
      int[] argmax, int argmaxOffset) {
    maxForward(batch, channels, length, x, xOffset, y, yOffset, argmax, argmaxOffset);
  }

  /** {@link #maxOverTimeBackward(int, int, int, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public static void maxOverTimeBackward(int batch, int channels, int length, float[] dy, int dyOffset, int[] argmax,
      int argmaxOffset, float[] dx, int dxOffset) {
    maxBackward(batch, channels, length, dy, dyOffset, argmax, argmaxOffset, dx, dxOffset);
  }
}
