package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementwise arithmetic, per-channel bias and reductions on contiguous floats.
 *
 * <ul>
 *   <li>{@link #add}, {@link #multiply}: {@code out = a + b}, {@code out = a * b}; exact up to one
 *       rounding each. {@link #axpy}: {@code y += alpha x}, one fused multiply-add per element.
 *       {@link #scale}: {@code y = alpha x}. Outputs may be an input at the same offset.
 *   <li>{@link #biasAdd}: {@code y[n, c, s] = x[n, c, s] + b[c]} over {@code [N, C, S]} (S = H*W,
 *       or 1 for a dense layer's {@code [N, C]}); {@link #biasBackward}: {@code db[c] = sum over
 *       n, s of dy[n, c, s]}, written (not accumulated).
 *   <li>{@link #sum}, {@link #mean}: blocked summation (see {@link Loss}): within
 *       {@code (Loss.BLOCK/4 + 5) u sum |x_i|} of the exact sum for any n.
 * </ul>
 */
public final class Elementwise {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private Elementwise() {}

  /** {@code out[i] = a[i] + b[i]}. */
  public static void add(long n, MemorySegment a, long aOffset, MemorySegment b, long bOffset, MemorySegment out,
      long outOffset) {
    binaryChecks(n, a, aOffset, b, bOffset, out, outOffset);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector.fromMemorySegment(SPECIES, a, 4 * (aOffset + i), ORDER, m)
          .add(FloatVector.fromMemorySegment(SPECIES, b, 4 * (bOffset + i), ORDER, m))
          .intoMemorySegment(out, 4 * (outOffset + i), ORDER, m);
    }
  }

  /** {@code out[i] = a[i] * b[i]}. */
  public static void multiply(long n, MemorySegment a, long aOffset, MemorySegment b, long bOffset,
      MemorySegment out, long outOffset) {
    binaryChecks(n, a, aOffset, b, bOffset, out, outOffset);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector.fromMemorySegment(SPECIES, a, 4 * (aOffset + i), ORDER, m)
          .mul(FloatVector.fromMemorySegment(SPECIES, b, 4 * (bOffset + i), ORDER, m))
          .intoMemorySegment(out, 4 * (outOffset + i), ORDER, m);
    }
  }

  /** {@code y[i] += alpha x[i]}. */
  public static void axpy(long n, float alpha, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    Checks.nonNegative(n, "n");
    span(n, x, xOffset, "x", false);
    span(n, y, yOffset, "y", true);
    FloatVector va = FloatVector.broadcast(SPECIES, alpha);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector.fromMemorySegment(SPECIES, x, 4 * (xOffset + i), ORDER, m)
          .fma(va, FloatVector.fromMemorySegment(SPECIES, y, 4 * (yOffset + i), ORDER, m))
          .intoMemorySegment(y, 4 * (yOffset + i), ORDER, m);
    }
  }

  /** {@code y[i] = alpha x[i]}. */
  public static void scale(long n, float alpha, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    Checks.nonNegative(n, "n");
    span(n, x, xOffset, "x", false);
    span(n, y, yOffset, "y", true);
    for (long i = 0; i < n; i += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(i, n);
      FloatVector.fromMemorySegment(SPECIES, x, 4 * (xOffset + i), ORDER, m).mul(alpha)
          .intoMemorySegment(y, 4 * (yOffset + i), ORDER, m);
    }
  }

  /** The sum of {@code x[0..n)}, blocked; 0 for n = 0. */
  public static float sum(long n, MemorySegment x, long xOffset) {
    Checks.nonNegative(n, "n");
    span(n, x, xOffset, "x", false);
    return (float) blockedSum(n, x, 4 * xOffset);
  }

  /** The mean of {@code x[0..n)}; NaN for n = 0, as PyTorch's mean of nothing. */
  public static float mean(long n, MemorySegment x, long xOffset) {
    Checks.nonNegative(n, "n");
    span(n, x, xOffset, "x", false);
    return (float) (blockedSum(n, x, 4 * xOffset) / n);
  }

  /** Block sums added in double; the error analysis is in {@link Loss}. */
  static double blockedSum(long n, MemorySegment x, long xAt) {
    double total = 0;
    for (long done = 0; done < n; done += Loss.BLOCK) {
      total += ChannelSums.sum(x, xAt + 4 * done, (int) Math.min(Loss.BLOCK, n - done));
    }
    return total;
  }

  /** {@code y[n, c, s] = x[n, c, s] + b[c]}; y may be x. */
  public static void biasAdd(int batch, int channels, int spatial, MemorySegment x, long xOffset, MemorySegment b,
      long bOffset, MemorySegment y, long yOffset) {
    Checks.nonNegative(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(spatial, "spatial");
    Checks.readable(x, "x");
    Checks.tensor("x", "[N,C,S]", batch, channels, spatial, -1, xOffset, Checks.floats(x));
    Checks.readable(b, "b");
    Checks.tensor("b", "[C]", channels, -1, -1, -1, bOffset, Checks.floats(b));
    Checks.writable(y, "y");
    Checks.tensor("y", "[N,C,S]", batch, channels, spatial, -1, yOffset, Checks.floats(y));
    if (spatial == 1) {
      // [N, C]: each row adds the whole bias vector.
      for (long r = 0; r < batch; r++) {
        long row = r * channels;
        add(channels, x, xOffset + row, b, bOffset, y, yOffset + row);
      }
      return;
    }
    for (long p = 0; p < (long) batch * channels; p++) {
      float bias = b.get(JAVA_FLOAT_UNALIGNED, 4 * (bOffset + p % channels));
      long plane = p * spatial;
      for (long i = 0; i < spatial; i += LANES) {
        VectorMask<Float> m = SPECIES.indexInRange(i, spatial);
        FloatVector.fromMemorySegment(SPECIES, x, 4 * (xOffset + plane + i), ORDER, m).add(bias)
            .intoMemorySegment(y, 4 * (yOffset + plane + i), ORDER, m);
      }
    }
  }

  /**
   * {@code db[c] = sum over n, s of dy[n, c, s]}: a float sum per channel, within
   * {@code (N S + 1) u sum |dy|} of exact (plane by plane in vector lanes, then the planes in
   * order), the same for any thread count.
   */
  public static void biasBackward(int batch, int channels, int spatial, MemorySegment dy, long dyOffset,
      MemorySegment db, long dbOffset, Parallelism parallelism) {
    Checks.nonNegative(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(spatial, "spatial");
    Checks.readable(dy, "dy");
    Checks.tensor("dy", "[N,C,S]", batch, channels, spatial, -1, dyOffset, Checks.floats(dy));
    Checks.writable(db, "db");
    Checks.tensor("db", "[C]", channels, -1, -1, -1, dbOffset, Checks.floats(db));
    Checks.notNull(parallelism, "parallelism");
    if (spatial > 1) {
      ChannelSums.run(batch, channels, spatial, dy, dyOffset, db, dbOffset, parallelism);
      return;
    }
    // [N, C]: add the rows into db, vector by vector.
    SegmentLoops.fill(db, 4 * dbOffset, channels, 0f);
    for (long r = 0; r < batch; r++) {
      SegmentLoops.addInto(dy, 4 * (dyOffset + r * channels), db, 4 * dbOffset, channels);
    }
  }

  private static void binaryChecks(long n, MemorySegment a, long aOffset, MemorySegment b, long bOffset,
      MemorySegment out, long outOffset) {
    Checks.nonNegative(n, "n");
    span(n, a, aOffset, "a", false);
    span(n, b, bOffset, "b", false);
    span(n, out, outOffset, "out", true);
  }

  /** {@code n} floats from element {@code offset} of a segment that is read, or also written. */
  static void span(long n, MemorySegment s, long offset, String name, boolean written) {
    Checks.accessible(s, name, written);
    if (offset < 0 || offset > Checks.floats(s) - n) {
      throw new IndexOutOfBoundsException(name + ": " + n + " floats at offset " + offset + " need floats ["
          + offset + ", " + (offset + n) + ") but its buffer holds " + Checks.floats(s));
    }
  }
}
