package dev.lanes.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.function.DoubleUnaryOperator;
import java.util.function.UnaryOperator;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * {@link VectorMath}'s functions against {@link Math}'s in double (then exact comparison), within
 * the bounds derived in their Javadoc: exp (and expNonPositive on x &lt;= 0) {@code 3u} relative for normal results and
 * {@code 2^-126} absolute below them, expm1 on x &lt;= 0 and log1p on [0, 1] {@code 5u}
 * (log1p: {@code 2^-148} absolute below {@code 2^-125}), tanh {@code 6u}; and the recurrent
 * steps' loops of {@link StepActivations}, which spell the exponential out.
 */
class VectorMathTest {
  private static final double U = Math.scalb(1.0, -24);
  private static final int LANES = FloatLanes.SPECIES.length();

  @Test
  void expIsWithinItsBoundAcrossItsRange() {
    // An even sweep of [-104, 88.37], then random points.
    sweep("exp", VectorMath::expUpTo88, Math::exp,
        exact -> exact >= Float.MIN_NORMAL ? 3 * U * exact : Math.scalb(1.0, -126),
        (i, random) -> i < 1_000_000 ? -104 + (88.37 + 104) * i / 1_000_000.0 : random.nextDouble() * (88.37 + 104) - 104);
  }

  @Test
  void expNonPositiveIsWithinTheExpBoundForNonPositiveArguments() {
    // Softmax's exponential: the same contract as exp on x <= 0. An even sweep of [-104, 0], then
    // random points there.
    sweep("expNonPositive", VectorMath::expNonPositive, Math::exp,
        exact -> exact >= Float.MIN_NORMAL ? 3 * U * exact : Math.scalb(1.0, -126),
        (i, random) -> i < 1_000_000 ? -104.0 * i / 1_000_000.0 : -104 * random.nextDouble());
  }

  @Test
  void clampedExpIsWithinTheExpBoundForNonPositiveArguments() {
    // The same contract as expNonPositive, over [-104, 0] (the clamp acts below -88).
    sweep("expClampedNonPositive", VectorMath::expClampedNonPositive, Math::exp,
        exact -> exact >= Float.MIN_NORMAL ? 3 * U * exact : Math.scalb(1.0, -126),
        (i, random) -> i < 1_000_000 ? -104.0 * i / 1_000_000.0 : -104 * random.nextDouble());
  }

  @Test
  void clampedExpHasTheBitsOfExpNonPositiveButForTwoFloats() {
    // Every float in [-89, -87], where the clamp and the underflow threshold act, and every 256th
    // bit pattern from -0 down to -200: the same bits, except -87.683105 and -87.68311, just below
    // the blend's threshold (-87.6831) and still above n = -127, where the clamped form gives about
    // 8.31e-39 (within the bound above) and the blend 0. Below -88 both are 0.
    int compared = 0;
    compared += compareBits(Float.floatToRawIntBits(-87f), Float.floatToRawIntBits(-89f), 1);
    compared += compareBits(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(-200f), 256);
    assertTrue(compared > 4_000_000, compared + " compared");
  }

  /** Compares the two exponentials on the bit patterns from {@code from} to {@code to} (negative floats), every {@code step}th. */
  private static int compareBits(int from, int to, int step) {
    float[] x = new float[LANES];
    int compared = 0;
    for (int bits = from; bits <= to; ) {
      for (int l = 0; l < LANES; l++, bits = Math.min(to, bits + step)) {
        x[l] = Float.intBitsToFloat(bits);
      }
      FloatVector in = FloatVector.fromArray(FloatLanes.SPECIES, x, 0);
      float[] clamped = VectorMath.expClampedNonPositive(in).toArray();
      float[] blended = VectorMath.expNonPositive(in).toArray();
      for (int l = 0; l < LANES; l++) {
        if (x[l] == -87.683105f || x[l] == -87.68311f) {
          assertEquals(0f, blended[l]);
          assertTrue(clamped[l] > 0f && clamped[l] < 8.32e-39f, "exp(" + x[l] + ") = " + clamped[l]);
        } else {
          assertEquals(Float.floatToRawIntBits(blended[l]), Float.floatToRawIntBits(clamped[l]), "exp(" + x[l] + ")");
        }
        compared++;
      }
      if (bits == to) {
        break;
      }
    }
    return compared;
  }

  @Test
  void expm1IsWithinItsBoundForNonPositiveArguments() {
    // An even sweep of [-100, 0], then magnitudes 2^-149 .. 2^7 spaced evenly in the exponent,
    // where the relative bound is hardest to keep near 0.
    sweep("expm1", VectorMath::expm1NonPositive, Math::expm1, exact -> 5 * U * Math.abs(exact),
        (i, random) -> i < 1_000_000 ? -100.0 * i / 1_000_000.0 : -Math.scalb(1.0, -149 + random.nextInt(156)) * (1 + random.nextDouble()));
  }

  @Test
  void log1pIsWithinItsBoundOnTheUnitInterval() {
    // An even sweep of [0, 1], then magnitudes 2^-149 .. 2^-1 spaced evenly in the exponent.
    sweep("log1p", VectorMath::log1pUnit, Math::log1p,
        exact -> exact >= Math.scalb(1.0, -125) ? 5 * U * exact : Math.scalb(1.0, -148),
        (i, random) -> i < 1_000_000 ? i / 1_000_000.0 : Math.scalb(1.0, -149 + random.nextInt(149)) * (1 + random.nextDouble()));
  }

  @Test
  void tanhIsWithinItsBoundAcrossItsRange() {
    tanhSweep("tanh", VectorMath::tanh);
  }

  @Test
  void recurrentStepTanhIsWithinItsBoundAcrossItsRange() {
    // The recurrent layers' two-branch loop, one vector through native memory, under the same 6u bound.
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment buffer = arena.allocate(4L * LANES, 64);
      tanhSweep("StepActivations.tanh", v -> throughLoop(StepActivations::tanh, buffer, v));
    }
  }

  @Test
  void recurrentStepSigmoidGivesTheStandaloneSigmoidsBits() {
    // The loop spells out expUpTo88; the same operations in the same order must give the same
    // bits as Activation.sigmoid over exp's whole range, its cut-offs, the infinities and NaN.
    SplittableRandom random = new SplittableRandom(20261202);
    float[] special = {0f, -0f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, 87.6831f, 87.68311f,
        -88.3762626f, -88.37627f, 104f, -104f, Float.MIN_VALUE, -Float.MAX_VALUE};
    float[] x = new float[LANES];
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment buffer = arena.allocate(4L * LANES, 64);
      int compared = 0;
      for (int step = 0; step < 1_000_000; step += LANES) {
        for (int l = 0; l < LANES; l++) {
          int i = step + l;
          x[l] = i < special.length ? special[i] : i < 500_000 ? -110 + 220f * i / 500_000 : (float) random.nextGaussian(0, 8);
        }
        FloatVector v = FloatVector.fromArray(FloatLanes.SPECIES, x, 0);
        float[] want = Activation.sigmoid(v).toArray();
        float[] got = throughLoop(StepActivations::sigmoid, buffer, v).toArray();
        for (int l = 0; l < LANES; l++) {
          assertEquals(Float.floatToRawIntBits(want[l]), Float.floatToRawIntBits(got[l]),
              "sigmoid(" + x[l] + "): loop " + got[l] + ", Activation.sigmoid " + want[l]);
          compared++;
        }
      }
      assertEquals(1_000_000, compared);
    }
  }

  @Test
  void recurrentStepLoopsStopAtTheirLength() {
    // A length that is not a whole number of vectors: the masked last step writes the first n
    // floats, each as a whole-vector call gives it, and not one byte past them.
    int n = 2 * LANES + 5;
    for (Loop loop : new Loop[] {StepActivations::sigmoid, StepActivations::tanh}) {
      try (Arena arena = Arena.ofConfined()) {
        MemorySegment x = arena.allocate(4L * 3 * LANES, 64);
        MemorySegment y = arena.allocate(4L * 3 * LANES, 64);
        MemorySegment whole = arena.allocate(4L * 3 * LANES, 64);
        for (int i = 0; i < 3 * LANES; i++) {
          x.setAtIndex(ValueLayout.JAVA_FLOAT, i, (i - 20) * 0.37f);
          y.setAtIndex(ValueLayout.JAVA_FLOAT, i, Float.intBitsToFloat(0x7fc0_1234));
        }
        loop.run(n, x, 0, y, 0);
        loop.run(3 * LANES, x, 0, whole, 0);
        for (int i = 0; i < 3 * LANES; i++) {
          int got = y.getAtIndex(ValueLayout.JAVA_INT, i);
          int want = i < n ? whole.getAtIndex(ValueLayout.JAVA_INT, i) : 0x7fc0_1234;
          assertEquals(want, got, "float " + i + " of " + n);
        }
      }
    }
  }

  @FunctionalInterface
  private interface Loop {
    void run(int n, MemorySegment x, long xAt, MemorySegment y, long yAt);
  }

  /** v through a loop over one vector of native memory, in place. */
  private static FloatVector throughLoop(Loop loop, MemorySegment buffer, FloatVector v) {
    v.intoMemorySegment(buffer, 0, ByteOrder.nativeOrder());
    loop.run(LANES, buffer, 0, buffer, 0);
    return FloatVector.fromMemorySegment(FloatLanes.SPECIES, buffer, 0, ByteOrder.nativeOrder());
  }

  private static void tanhSweep(String name, UnaryOperator<FloatVector> tanh) {
    // An even sweep of [-20, 20] (tanh is 1 in float beyond 9.1; the sweep crosses the two-branch
    // form's switch between the Taylor series and 1 - 2/(1 + e^2|x|) at |x| = 0.55, and every
    // reduction step n of the expm1 form), then magnitudes 2^-149 .. 2^7 of either sign, spaced
    // evenly in the exponent, where the relative bound is hardest to keep near 0.
    sweep(name, tanh, Math::tanh, exact -> 6 * U * Math.abs(exact),
        (i, random) -> i < 1_000_000 ? -20 + 40.0 * i / 1_000_000.0
            : (random.nextBoolean() ? 1 : -1) * Math.scalb(1.0, -149 + random.nextInt(156)) * (1 + random.nextDouble()));
  }

  /** Arguments at 2M indexes, rounded to float, through f LANES at a time, each checked against exact. */
  private static void sweep(String name, UnaryOperator<FloatVector> f, DoubleUnaryOperator exactOf,
      DoubleUnaryOperator boundOf, Arguments arguments) {
    float[] x = new float[LANES];
    float[] y = new float[LANES];
    SplittableRandom random = new SplittableRandom(20261122);
    int checked = 0;
    for (int step = 0; step < 2_000_000; step += LANES) {
      for (int l = 0; l < LANES; l++) {
        x[l] = (float) arguments.at(step + l, random);
      }
      f.apply(FloatVector.fromArray(FloatLanes.SPECIES, x, 0)).intoArray(y, 0);
      for (int l = 0; l < LANES; l++) {
        double exact = exactOf.applyAsDouble(x[l]);
        double error = Math.abs(y[l] - exact);
        assertTrue(error <= boundOf.applyAsDouble(exact),
            name + "(" + x[l] + ") = " + y[l] + ", exact " + exact + ", error " + error / U + "u");
        checked++;
      }
    }
    assertEquals(2_000_000, checked);
  }

  @FunctionalInterface
  private interface Arguments {
    double at(int index, SplittableRandom random);
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
      if (l % special.length <= 4) {
        // The clamped form's domain, +0 and -0 to -inf and a positive NaN: as expUpTo88.
        float clamped = VectorMath.expClampedNonPositive(FloatVector.broadcast(FloatLanes.SPECIES, x[l])).lane(0);
        assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(clamped), "expClampedNonPositive(" + x[l] + ")");
      }
      if (Float.isNaN(want)) {
        assertTrue(Float.isNaN(e[l]), "exp(NaN)");
        assertTrue(Float.isNaN(VectorMath.expNonPositive(FloatVector.broadcast(FloatLanes.SPECIES, x[l])).lane(0)),
            "expNonPositive(NaN)");
      } else if (l % special.length == 7) {
        assertTrue(Math.abs(e[l] - Math.E) <= 3 * U * Math.E, "exp(1) = " + e[l]);
      } else {
        assertEquals(want, e[l], "exp(" + x[l] + ")");
      }
    }
  }
}
