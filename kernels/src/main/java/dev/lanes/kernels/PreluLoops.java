package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The loops of {@link Activation#prelu}: over {@code [N, C, S]} with S > 1 a channel's plane is a
 * contiguous run with one slope; with S = 1 ({@code [N, C]}) a row runs across channels, so the
 * slopes are a vector too. Byte offsets; arguments already validated.
 */
final class PreluLoops {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private PreluLoops() {}

  static void forward(int batch, int channels, int spatial, MemorySegment x, long xAt, MemorySegment a, long aAt,
      int slopes, MemorySegment y, long yAt) {
    if (spatial == 1) {
      for (long n = 0; n < batch; n++) {
        long row = 4 * n * channels;
        span(channels, x, xAt + row, a, aAt, slopes > 1, y, yAt + row);
      }
      return;
    }
    for (long p = 0; p < (long) batch * channels; p++) {
      long plane = 4 * p * spatial;
      span(spatial, x, xAt + plane, a, slopes == 1 ? aAt : aAt + 4 * (p % channels), false, y, yAt + plane);
    }
  }

  /** {@code y = x > 0 ? x : slope x}, the slopes a vector from {@code a} or one broadcast float. */
  private static void span(long length, MemorySegment x, long xAt, MemorySegment a, long aAt, boolean perLane,
      MemorySegment y, long yAt) {
    FloatVector shared = FloatVector.broadcast(SPECIES, a.get(JAVA_FLOAT_UNALIGNED, aAt));
    long whole = length - length % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, length);
    for (long i = 0; i < length; i += LANES) {
      VectorMask<Float> lanes = i < whole ? SPECIES.maskAll(true) : tail;
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4 * i, ORDER, lanes);
      FloatVector slope = perLane ? FloatVector.fromMemorySegment(SPECIES, a, aAt + 4 * i, ORDER, lanes) : shared;
      v.mul(slope).blend(v, v.compare(VectorOperators.GT, 0f)).intoMemorySegment(y, yAt + 4 * i, ORDER, lanes);
    }
  }

  static void backward(int batch, int channels, int spatial, MemorySegment x, long xAt, MemorySegment a, long aAt,
      int slopes, MemorySegment dy, long dyAt, MemorySegment dx, long dxAt, MemorySegment da, long daAt) {
    SegmentLoops.fill(da, daAt, slopes, 0f);
    if (spatial == 1) {
      for (long n = 0; n < batch; n++) {
        long row = 4 * n * channels;
        float shared = rowGradient(channels, x, xAt + row, a, aAt, slopes > 1, dy, dyAt + row, dx, dxAt + row, da,
            daAt);
        if (slopes == 1) {
          da.set(JAVA_FLOAT_UNALIGNED, daAt, da.get(JAVA_FLOAT_UNALIGNED, daAt) + shared);
        }
      }
      return;
    }
    for (long p = 0; p < (long) batch * channels; p++) {
      long plane = 4 * p * spatial;
      long slopeAt = slopes == 1 ? daAt : daAt + 4 * (p % channels);
      float sum = rowGradient(spatial, x, xAt + plane, a, slopes == 1 ? aAt : aAt + 4 * (p % channels), false,
          dy, dyAt + plane, dx, dxAt + plane, da, slopeAt);
      da.set(JAVA_FLOAT_UNALIGNED, slopeAt, da.get(JAVA_FLOAT_UNALIGNED, slopeAt) + sum);
    }
  }

  /**
   * {@code dx = x > 0 ? dy : slope dy} along a span. With per-lane slopes, {@code x dy} (where
   * {@code x <= 0}) is added into the matching lanes of {@code da}; with a shared slope it is
   * summed and returned.
   */
  private static float rowGradient(long length, MemorySegment x, long xAt, MemorySegment a, long aAt,
      boolean perLane, MemorySegment dy, long dyAt, MemorySegment dx, long dxAt, MemorySegment da, long daAt) {
    FloatVector shared = FloatVector.broadcast(SPECIES, a.get(JAVA_FLOAT_UNALIGNED, aAt));
    FloatVector sum = FloatVector.zero(SPECIES);
    long whole = length - length % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, length);
    for (long i = 0; i < length; i += LANES) {
      VectorMask<Float> lanes = i < whole ? SPECIES.maskAll(true) : tail;
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, xAt + 4 * i, ORDER, lanes);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, dy, dyAt + 4 * i, ORDER, lanes);
      VectorMask<Float> positive = v.compare(VectorOperators.GT, 0f);
      FloatVector slope = perLane ? FloatVector.fromMemorySegment(SPECIES, a, aAt + 4 * i, ORDER, lanes) : shared;
      g.mul(slope).blend(g, positive).intoMemorySegment(dx, dxAt + 4 * i, ORDER, lanes);
      FloatVector contribution = v.mul(g).blend(0f, positive);
      if (perLane) {
        FloatVector.fromMemorySegment(SPECIES, da, daAt + 4 * i, ORDER, lanes).add(contribution)
            .intoMemorySegment(da, daAt + 4 * i, ORDER, lanes);
      } else {
        sum = sum.add(contribution, lanes);
      }
    }
    return FloatLanes.sum(sum);
  }
}
