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
 * <p>Why not {@code lanewise(EXPM1)} or {@code lanewise(LOG1P)} either: C2 computes them with
 * SVML stubs, the interpreter and C1 with {@link Math}'s scalar functions, and the two differ in
 * the last bit. A kernel then gave different bits depending on which tier ran it, so a second
 * thread, still interpreted, changed an ELU gradient by 1 ulp. Everything here is FMAs, adds,
 * products and divisions, rounded by IEEE in every tier.
 *
 * <p>Small, so that C2 inlines it into every caller: a vector that crossed a call C2 did not
 * inline would be boxed. C2 can still refuse them at a call site it takes for cold, once it has
 * compiled them on their own; {@link StepActivations} has the measured case and the loops that
 * avoid it.
 */
final class VectorMath {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final float LOG2E = 1.44269504088896341f;
  /** ln 2 split in two: C1 has 9 significant bits, so n*C1 is exact for |n| < 2^15. */
  private static final float LN2_C1 = 0.693359375f;
  private static final float LN2_C2 = -2.12194440e-4f;
  /**
   * Adding then subtracting 1.5 * 2^23 rounds a float to the nearest integer (for |x| < 2^22). The
   * 127 added with it is the exponent bias; being an integer, it can change the rounding only at an
   * exact tie, where either neighbour keeps {@code |r| <= ln2/2} and 2^n exact.
   */
  private static final float BIASED_ROUNDING = 12582912f + 127f;
  /** Below this e^x < 2^-126 * 2^-0.5 flushes to 0 (the exponent trick needs n >= -126). */
  static final float UNDERFLOW = -87.6831f;
  /** Above this e^x would need n = 128; returned as +inf. */
  static final float OVERFLOW = 88.3762626f;

  private VectorMath() {}

  /**
   * e^x for arguments up to 88.37, with relative error at most {@code 3u} ({@code u = 2^-24}) for
   * normal results, and absolute error at most {@code 2^-126} below them (results under about
   * {@code 2^-126.5} are 0). -inf gives 0, NaN gives NaN, arguments above 88.37 give +inf.
   *
   * <p>Derivation: {@code x = n ln2 + r} with n the nearest integer to {@code x log2 e}, so
   * {@code |r| <= ln2/2 = 0.347}. {@code r = (x - n C1) - n C2} by two FMAs: the first is exact
   * (Sterbenz), the second rounds once, {@code |dr| <= u|r|}, 0.35u in e^r. e^r is a degree-6
   * polynomial {@code 1 + r + X2 r^2 + ... + X6 r^6}, minimax in relative error on
   * {@code |r| <= ln2/2}, its coefficients rounded to float one at a time from X2 up, the rest
   * refitted after each ({@code tools/fit_exp.py} fits and checks them): with those float
   * coefficients it is within 0.12u of e^r (4*10^6 points against exp in double). Horner with FMAs rounds once per step, and each earlier
   * step is damped by {@code |r| <= 0.35}: at most {@code u/(1 - 0.35) = 1.54u}. (The same check
   * with float FMAs: 1.05u at most, against 1.08u for the degree-7 Taylor polynomial this replaced,
   * which took one more FMA.) Scaling by {@code 2^n} is exact for normal results. In all, under
   * 2.1u; 3u is stated.
   */
  static FloatVector expUpTo88(FloatVector x) {
    return expNonPositive(x).blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, OVERFLOW));
  }

  /**
   * {@link #expUpTo88} for arguments at most 88.37 that need no overflow test: below it, the same
   * bits. Softmax's {@code x - max} is never positive, so its exponentials skip the compare and the
   * blend (2 of about 18 vector instructions); NaN still gives NaN.
   */
  static FloatVector expNonPositive(FloatVector x) {
    return reducedExp(x).blend(0f, x.compare(VectorOperators.LT, UNDERFLOW));
  }

  /**
   * {@code 2^n e^r} as derived at {@link #expUpTo88}, with no test of its range: right for
   * {@code -127 <= n <= 127} (n = -127 gives exactly 0, see {@link #powerOfTwo}). The recurrent
   * steps' loops spell it out, with {@link #expUpTo88}'s blends ({@link StepActivations} says why):
   * a change here must be made there too, and {@code VectorMathTest} compares the two bit for bit.
   */
  private static FloatVector reducedExp(FloatVector x) {
    FloatVector biased = biasedExponent(x);
    FloatVector r = remainder(x, biased.sub(V_BIASED_ROUNDING));
    FloatVector p = r.fma(X6, X5).fma(r, X4).fma(r, X3).fma(r, X2).fma(r, E1).fma(r, E0);
    return p.mul(powerOfTwo(biased));
  }

  /**
   * {@link #expNonPositive} for softmax: arguments in [-inf, 0] or a NaN whose sign bit is clear,
   * for two fewer instructions. Leaving out the underflow compare and blend took 15-20% off the
   * time of a loop that takes 1M exponentials from L1 and sums them; this form, which needs one
   * instruction back, 8-13% (one thread, 1024 rows of 1000, in one JVM).
   *
   * <p>How: read as unsigned ints, the bits of +0 are the smallest, and those of a float at or below
   * -0 grow with its magnitude, so the unsigned minimum with the bits of -88 raises every argument
   * below -88 to -88, -inf included, and leaves -88 and above and positive NaNs as they are. Below
   * about -87.68, n = round(x log2 e) is -127, for which {@link #powerOfTwo} gives +0: the result
   * is exactly 0 there, as the blend gives in {@link #expNonPositive}. Between the blend's
   * threshold -87.6831 and the point where n becomes -127 lie two floats, -87.683105 and -87.68311,
   * where this form returns {@code p 2^-126}, about 8.31e-39, and {@link #expNonPositive} 0: both
   * within the stated absolute {@code 2^-126}; everywhere else the bits are the same. A NaN with its sign bit set would be
   * raised to -88 and give 0 (see {@link Softmax}'s exponential loop for why softmax's outputs are
   * NaN all the same).
   */
  static FloatVector expClampedNonPositive(FloatVector x) {
    return reducedExp(x.reinterpretAsInts().lanewise(VectorOperators.UMIN, V_LOWEST).reinterpretAsFloats());
  }

  /**
   * e^x - 1 for x &lt;= 0 (ELU's negative branch), with relative error at most {@code 5u}; -1
   * below -87.68 (where the true value rounds to -1), NaN for NaN. Positive arguments are outside
   * this contract.
   *
   * <p>Derivation. As {@link #expUpTo88}, {@code x = n ln2 + r} with {@code |r| <= 0.347}, but
   * {@code q = e^r - 1 = r P(r)} is evaluated without its constant term, so nothing cancels:
   * P is the degree-7 Taylor polynomial of {@code (e^r - 1)/r} (truncation {@code r^8/9! < 0.01u}),
   * Horner rounds it to 1.2u, the product by r adds u, and r's own rounding (u|r|, none when
   * n = 0) moves q by at most 1.2u: {@code |dq| <= 3.4u |q|}. Then
   * {@code e^x - 1 = 2^n q + (2^n - 1)} in one FMA (one more u); {@code 2^n - 1} is exact for
   * {@code n >= -24} and rounds to -1 below, within u of a result near -1. For n = 0 the result is
   * q, 3.4u. For {@code n <= -1} the result has {@code |e^x - 1| >= 0.29} and
   * {@code |2^n q| <= 0.21}, so q's error counts at most 0.72 times: {@code 2.5u + 2u}. 5u is stated.
   */
  static FloatVector expm1NonPositive(FloatVector x) {
    FloatVector biased = biasedExponent(x);
    FloatVector r = remainder(x, biased.sub(V_BIASED_ROUNDING));
    FloatVector q = r.fma(E8, E7).fma(r, E6).fma(r, E5).fma(r, E4).fma(r, E3).fma(r, E2).fma(r, E1).mul(r);
    FloatVector scale = powerOfTwo(biased);
    FloatVector m = q.fma(scale, scale.sub(E0));
    return m.blend(-1f, x.compare(VectorOperators.LT, UNDERFLOW));
  }

  /**
   * {@code 1.5 * 2^23 + 127 + n} with n = round(x log2 e), the range reduction of the exponentials:
   * the addition rounds x log2 e to an integer (for |x| &lt; 2.9e6), so the result minus
   * {@link #BIASED_ROUNDING} is n exactly, and the low mantissa bits already hold n + 127, the
   * biased exponent of 2^n (see {@link #powerOfTwo}).
   */
  private static FloatVector biasedExponent(FloatVector x) {
    return x.fma(V_LOG2E, V_BIASED_ROUNDING);
  }

  /** {@code r = x - n ln2} in two FMAs, the first exact (see {@link #expUpTo88}). */
  private static FloatVector remainder(FloatVector x, FloatVector n) {
    // n * (-C) rather than (-n) * C: the same exact product, without a sign flip of n per FMA.
    return n.fma(V_MINUS_LN2_C2, n.fma(V_MINUS_LN2_C1, x));
  }

  /**
   * {@code 2^n} for integral n in [-126, 127], from {@link #biasedExponent}: shifting its bits left
   * by 23 drops the sign, the exponent and the 1.5 * 2^23, and moves n + 127 into the exponent field.
   * Why not {@code F2I} of n and an add: Java's conversion must saturate and map NaN to 0, which C2
   * emits as a compare, a test and a branch around a fix-up, per vector.
   */
  private static FloatVector powerOfTwo(FloatVector biased) {
    return biased.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
  }

  /**
   * log(1 + t) for t in [0, 1] (softplus's and the logistic loss's {@code log1p(e^-|x|)}), with
   * relative error at most {@code 5u} for {@code t >= 2^-125}, and absolute error at most
   * {@code 2^-148} below, where s is subnormal and its quotient rounds absolutely
   * ({@link #expUpTo88} hands those callers no such t); NaN for NaN.
   *
   * <p>Derivation. {@code log(1 + t) = 2 atanh(s)} with {@code s = t/(2 + t) <= 1/3}: the sum and
   * the quotient round twice, 2u on s. {@code 2 atanh(s) = 2s A(w)}, {@code w = s^2 <= 1/9},
   * {@code A(w) = sum w^k/(2k+1)} to k = 7 (truncation {@code w^8/17 < 0.03u}); w's 5u moves A by
   * {@code 5u w A'(w)/A < 0.2u}; Horner in w rounds to {@code u (1 + w/3 ...) < 1.1u}; the final
   * product u (2s is exact). In all under 4.4u; 5u is stated.
   */
  static FloatVector log1pUnit(FloatVector t) {
    FloatVector s = t.div(t.add(TWO));
    FloatVector w = s.mul(s);
    FloatVector a = w.fma(L15, L13).fma(w, L11).fma(w, L9).fma(w, L7).fma(w, L5).fma(w, L3).fma(w, E0);
    return s.add(s).mul(a);
  }

  /*
   * Constants as vectors built once: a broadcast per use is a call tree of its own in C2's graph,
   * and the kernels that combine several of these functions ran into C2's inlining node budget
   * (NodeCountInliningCutoff), left a call out of line and boxed its vectors.
   */
  static final FloatVector V_LOG2E = all(LOG2E);
  static final FloatVector V_BIASED_ROUNDING = all(BIASED_ROUNDING);
  static final FloatVector V_MINUS_LN2_C1 = all(-LN2_C1);
  static final FloatVector V_MINUS_LN2_C2 = all(-LN2_C2);
  /** The bits of -88, {@link #expClampedNonPositive}'s lowest argument (its exponential is 0). */
  private static final IntVector V_LOWEST = all(-88f).reinterpretAsInts();
  /** e^r's degree-6 minimax coefficients for r^2 .. r^6 (see {@link #expUpTo88}). */
  static final FloatVector X2 = all(0.49999997f);
  static final FloatVector X3 = all(0.16666523f);
  static final FloatVector X4 = all(0.041667104f);
  static final FloatVector X5 = all(0.008369209f);
  static final FloatVector X6 = all(0.0013903008f);
  /** Taylor coefficients of e^r, 1/k! (expm1's polynomial; E0 and E1 also the exponential's). */
  private static final FloatVector E8 = all(1f / 40320f);
  private static final FloatVector E7 = all(1f / 5040f);
  private static final FloatVector E6 = all(1f / 720f);
  private static final FloatVector E5 = all(1f / 120f);
  private static final FloatVector E4 = all(1f / 24f);
  private static final FloatVector E3 = all(1f / 6f);
  private static final FloatVector E2 = all(0.5f);
  static final FloatVector E1 = all(1f);
  static final FloatVector E0 = all(1f);

  /** Coefficients of atanh(s)/s in w = s^2: 1/(2k+1). */
  private static final FloatVector L3 = all(1f / 3f);
  private static final FloatVector L5 = all(1f / 5f);
  private static final FloatVector L7 = all(1f / 7f);
  private static final FloatVector L9 = all(1f / 9f);
  private static final FloatVector L11 = all(1f / 11f);
  private static final FloatVector L13 = all(1f / 13f);
  private static final FloatVector L15 = all(1f / 15f);

  private static final FloatVector TWO = all(2f);
  private static final FloatVector MINUS_TWO = all(-2f);

  /**
   * tanh x with relative error at most {@code 6u}, NaN for NaN, ±1 at ±inf.
   *
   * <p>Why not {@code lanewise(TANH)}: it is intrinsified here (SVML) and allocates nothing, but
   * measured 25 ms per 16M floats against 9.5 ms for a copy of the same bytes.
   *
   * <p>Why through expm1: {@code tanh a = -m/(2 + m)} with {@code m = e^{-2a} - 1}, {@code a = |x|},
   * holds for every a, so one branch serves all arguments. {@link StepActivations#tanh} evaluates two
   * forms on every lane; its two long dependency chains made the 16M-float forward latency-bound,
   * at 2.6 to 2.9 times the copy time (measured, one thread), against 1.6 to 1.7 for this one.
   *
   * <p>Derivation. {@code -2a} is exact. As a function of m the result has condition
   * {@code 2/(2 + m)}: a relative error ε in m becomes {@code 2ε/(2 + m)} in tanh. From
   * {@link #expm1NonPositive}'s derivation, m is {@code 2^n q + (2^n - 1)} rounded once, with
   * {@code |dq| <= 3.4u |q|}, so {@code |dm| <= 3.4u |2^n q| + u |m|}. For n = 0 (m = q, the FMA
   * exact) that is {@code 3.4u |m|}, and {@code m >= -0.293} keeps the condition under 1.17: 4.0u.
   * For {@code n <= -1}, with {@code w = e^{-2a}}, {@code |2^n q| / |m| = |w - 2^n| / (1 - w)} is largest
   * at the top of n = -1 ({@code w = 0.707}: 0.71), giving {@code 1.17 (3.4u 0.71 + u) < 4.0u}; lower
   * w only shrinks it (at most {@code 2u} as w goes to 0). Then {@code -2 - m} and the quotient round
   * once each: under 6u in all. Above {@code a = 43.8} m is -1 exactly and the result exactly 1; for
   * tiny a, {@code m = -2a} exactly and the result is a. The sign comes back by a blend, so
   * {@code tanh(-0)} is {@code +0}.
   */
  static FloatVector tanh(FloatVector x) {
    FloatVector m = expm1NonPositive(x.abs().mul(MINUS_TWO));
    FloatVector magnitude = m.div(MINUS_TWO.sub(m));
    return magnitude.blend(magnitude.neg(), x.compare(VectorOperators.LT, 0f));
  }

  static FloatVector all(float value) {
    return FloatVector.broadcast(SPECIES, value);
  }
}
