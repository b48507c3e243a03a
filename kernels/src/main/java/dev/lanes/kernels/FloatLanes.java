package dev.lanes.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float species every Lanes kernel is compiled against, fixed once per JVM.
 *
 * <p>It has to be a {@code static final} constant: C2 only turns Vector API calls into machine
 * instructions when it can see the species as a constant, so a species passed around as an
 * ordinary value would silently fall back to boxed, allocating Java code.
 *
 * <p>By default it is {@link FloatVector#SPECIES_PREFERRED} (512-bit on AVX-512). The system
 * property {@value #PROPERTY} = 128, 256 or 512 selects a narrower or wider shape, which is how
 * the tests cover the 256- and 128-bit code paths on an AVX-512 machine.
 */
final class FloatLanes {
  /** System property that selects the vector width in bits; 0 or absent means the preferred one. */
  static final String PROPERTY = "lanes.vectorBits";

  static final VectorSpecies<Float> SPECIES = select(Integer.getInteger(PROPERTY, 0));

  /** Lane count of {@link #SPECIES}: 16, 8, 4 or 2. */
  static final int LANES = SPECIES.length();

  // Partner lanes for the fixed reduction tree of sum: lane i meets lane i ^ d. Where d is not
  // below LANES the shuffle is the identity and sum skips that level.
  static final VectorShuffle<Float> PARTNER_8 = partner(8);
  static final VectorShuffle<Float> PARTNER_4 = partner(4);
  static final VectorShuffle<Float> PARTNER_2 = partner(2);
  static final VectorShuffle<Float> PARTNER_1 = partner(1);

  private FloatLanes() {}

  /**
   * The sum of v's lanes, added in one fixed order: a pairwise tree of lane-wise adds, so every
   * lane i meets lane i ^ d for d = LANES/2 down to 1.
   *
   * <p>Why not {@code reduceLanes(ADD)}: its order of additions is unspecified, and in practice
   * C2's intrinsic and the interpreter's Java fallback add in different orders. Two threads running
   * one kernel at different compilation tiers then round differently, and a result would depend on
   * the thread count and on the JIT's timing (seen as 1-ulp differences in a softmax backward
   * between 1 and 2 threads). Lane-wise adds and lane permutes are exact IEEE operations in every
   * tier. Cost: log2(LANES) permute-add pairs, as the intrinsic's own tree.
   */
  static float sum(FloatVector v) {
    if (LANES > 8) {
      v = v.add(v.rearrange(PARTNER_8));
    }
    if (LANES > 4) {
      v = v.add(v.rearrange(PARTNER_4));
    }
    if (LANES > 2) {
      v = v.add(v.rearrange(PARTNER_2));
    }
    v = v.add(v.rearrange(PARTNER_1));
    return v.lane(0);
  }

  /**
   * {@link #sum} of lanes already stored in {@code lanes[0 .. LANES)}, in the same order, so with the
   * same bits (at each step lane i < d takes lane i + d = i ^ d, and IEEE addition commutes); the
   * array is overwritten. For callers too big for C2 to inline {@link #sum}: a vector passed to a
   * call that is not inlined is boxed.
   */
  static float sumStored(float[] lanes) {
    for (int d = LANES / 2; d >= 1; d /= 2) {
      for (int i = 0; i < d; i++) {
        lanes[i] += lanes[i + d];
      }
    }
    return lanes[0];
  }

  private static VectorShuffle<Float> partner(int distance) {
    int lanes = LANES;
    return VectorShuffle.fromOp(SPECIES, i -> distance < lanes ? i ^ distance : i);
  }

  private static VectorSpecies<Float> select(int bits) {
    return switch (bits) {
      case 0 -> FloatVector.SPECIES_PREFERRED;
      case 64, 128, 256, 512 -> FloatVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(bits))
          .check(float.class);
      default -> throw new IllegalArgumentException(
          PROPERTY + " = " + bits + " is not a vector width; use 128, 256 or 512 (or 0 for the preferred width)");
    };
  }
}
