package dev.lanes.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * {@link VectorMath#expUpTo88} against {@code Math.exp} (double, then exact comparison), within
 * the bound derived in its Javadoc: {@code 3u} relative for normal results, {@code 2^-126} absolute
 * below them.
 */
class VectorMathTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final int LANES = FloatLanes.SPECIES.length();

  @Test
  void expIsWithinItsBoundAcrossItsRange() {
    float[] x = new float[LANES];
    float[] e = new float[LANES];
    SplittableRandom random = new SplittableRandom(20261122);
    int checked = 0;
    // An even sweep of [-104, 88.37], then random points, LANES at a time.
    for (int step = 0; step < 2_000_000; step += LANES) {
      for (int l = 0; l < LANES; l++) {
        x[l] = step < 1_000_000
            ? (float) (-104 + (88.37 + 104) * (step + l) / 1_000_000.0)
            : (float) (random.nextDouble() * (88.37 + 104) - 104);
      }
      VectorMath.expUpTo88(FloatVector.fromArray(FloatLanes.SPECIES, x, 0)).intoArray(e, 0);
      for (int l = 0; l < LANES; l++) {
        double exact = Math.exp(x[l]);
        double bound = exact >= Float.MIN_NORMAL ? 3 * U * exact : Math.scalb(1.0, -126);
        double error = Math.abs(e[l] - exact);
        assertTrue(error <= bound, "exp(" + x[l] + ") = " + e[l] + ", exact " + exact + ", error " + error);
        checked++;
      }
    }
    assertTrue(checked >= 2_000_000);
  }

  @Test
  void specialArguments() {
    float[] x = new float[LANES];
    float[] e = new float[LANES];
    float[] special = {0f, -0f, Float.NEGATIVE_INFINITY, Float.NaN, -1e30f, 89f, Float.POSITIVE_INFINITY, 1f};
    for (int l = 0; l < LANES; l++) {
      x[l] = special[l % special.length];
    }
    VectorMath.expUpTo88(FloatVector.fromArray(FloatLanes.SPECIES, x, 0)).intoArray(e, 0);
    for (int l = 0; l < LANES; l++) {
      float want = switch (l % special.length) {
        case 0, 1 -> 1f;
        case 2, 4 -> 0f;
        case 3 -> Float.NaN;
        case 5, 6 -> Float.POSITIVE_INFINITY;
        default -> (float) Math.E;
      };
      if (Float.isNaN(want)) {
        assertTrue(Float.isNaN(e[l]), "exp(NaN)");
      } else if (l % special.length == 7) {
        assertTrue(Math.abs(e[l] - Math.E) <= 3 * U * Math.E, "exp(1) = " + e[l]);
      } else {
        assertEquals(want, e[l], "exp(" + x[l] + ")");
      }
    }
  }
}
