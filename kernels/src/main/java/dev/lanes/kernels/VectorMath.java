package dev.lanes.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementary functions on float vectors, for kernels whose arguments have a known range.
 *
 * <p>Why not {@code lanewise(EXP)}: the Vector API's EXP is as accurate as {@code Math.exp} (under
 * 1 ulp), and measured here it cost about as much as the rest of a softmax forward pass. These
 * versions trade a little accuracy, stated and derived below, for a short chain of FMAs.
 *
 * <p>Small, so that C2 inlines it into every caller: a vector that crossed a call C2 did not
 * inline would be boxed.
 */
final class VectorMath {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final float LOG2E = 1.44269504088896341f;
  /** ln 2 split in two: C1 has 9 significant bits, so n*C1 is exact for |n| < 2^15. */
  private static final float LN2_C1 = 0.693359375f;
  private static final float LN2_C2 = -2.12194440e-4f;
  /** Adding then subtracting 1.5 * 2^23 rounds a float to the nearest integer (for |x| < 2^22). */
  private static final float ROUNDING = 12582912f;
  /** Below this e^x < 2^-126 * 2^-0.5 flushes to 0 (the exponent trick needs n >= -126). */
  private static final float UNDERFLOW = -87.6831f;
  /** Above this e^x would need n = 128; returned as +inf. */
  private static final float OVERFLOW = 88.3762626f;

  private VectorMath() {}

  /**
   * e^x for arguments up to 88.37, with relative error at most {@code 3u} ({@code u = 2^-24}) for
   * normal results, and absolute error at most {@code 2^-126} below them (results under about
   * {@code 2^-126.5} are 0). -inf gives 0, NaN gives NaN, arguments above 88.37 give +inf.
   *
   * <p>Derivation: {@code x = n ln2 + r} with n the nearest integer to {@code x log2 e}, so
   * {@code |r| <= ln2/2 = 0.347}. {@code r = (x - n C1) - n C2} by two FMAs: the first is exact
   * (Sterbenz), the second rounds once, {@code |dr| <= u|r|}, 0.35u in e^r. e^r is the degree-7
   * Taylor polynomial: truncation {@code r^8/8! <= 5.4e-9 = 0.1u}; Horner with FMAs rounds once per
   * step, and each earlier step is damped by {@code |r| <= 0.35}: at most {@code u/(1 - 0.35) = 1.54u};
   * coefficient rounding adds under 0.1u. Scaling by {@code 2^n} is exact for normal results. In
   * all, under 2.1u; 3u is stated.
   */
  static FloatVector expUpTo88(FloatVector x) {
    FloatVector t = x.fma(FloatVector.broadcast(SPECIES, LOG2E), FloatVector.broadcast(SPECIES, ROUNDING));
    FloatVector n = t.sub(ROUNDING);
    FloatVector r = n.neg().fma(FloatVector.broadcast(SPECIES, LN2_C1), x);
    r = n.neg().fma(FloatVector.broadcast(SPECIES, LN2_C2), r);
    FloatVector p = FloatVector.broadcast(SPECIES, 1f / 5040f);
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f / 720f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f / 120f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f / 24f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f / 6f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 0.5f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f));
    p = p.fma(r, FloatVector.broadcast(SPECIES, 1f));
    IntVector exponent = (IntVector) n.convert(VectorOperators.F2I, 0);
    FloatVector scale = exponent.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
    FloatVector e = p.mul(scale);
    e = e.blend(FloatVector.zero(SPECIES), x.compare(VectorOperators.LT, UNDERFLOW));
    return e.blend(FloatVector.broadcast(SPECIES, Float.POSITIVE_INFINITY), x.compare(VectorOperators.GT, OVERFLOW));
  }
}
