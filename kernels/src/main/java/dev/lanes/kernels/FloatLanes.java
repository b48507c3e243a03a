package dev.lanes.kernels;

import jdk.incubator.vector.FloatVector;
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

  private FloatLanes() {}

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
