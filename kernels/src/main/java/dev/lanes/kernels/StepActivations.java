package dev.lanes.kernels;

import static dev.lanes.kernels.VectorMath.E0;
import static dev.lanes.kernels.VectorMath.E1;
import static dev.lanes.kernels.VectorMath.OVERFLOW;
import static dev.lanes.kernels.VectorMath.UNDERFLOW;
import static dev.lanes.kernels.VectorMath.V_BIASED_ROUNDING;
import static dev.lanes.kernels.VectorMath.V_LOG2E;
import static dev.lanes.kernels.VectorMath.V_MINUS_LN2_C1;
import static dev.lanes.kernels.VectorMath.V_MINUS_LN2_C2;
import static dev.lanes.kernels.VectorMath.X2;
import static dev.lanes.kernels.VectorMath.X3;
import static dev.lanes.kernels.VectorMath.X4;
import static dev.lanes.kernels.VectorMath.X5;
import static dev.lanes.kernels.VectorMath.X6;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The sigmoid and tanh of the recurrent steps ({@link Lstm}, {@link Gru}, through
 * {@link Activation#runInStep}), as loops over memory whose bodies spell out every vector
 * operation: nothing in them calls a method that takes or returns a vector, other than the Vector
 * API's own, which the JDK forces inline. A call C2 leaves out of line then costs a call, never a
 * boxed vector. Whole vectors go unmasked and a last partial one masked: the gate passes call
 * these on whole vectors of native memory staged by {@link Activation#runInStep}, and the LSTM's
 * cell passes call them directly on native rows of H (other rows go through the staging), so that
 * the staging driver does not join their compiled units (inlined into
 * {@code LstmLoops.cellBackward} it grew C2's compile of that method from about 1 s to 4 s,
 * during which the passes ran C1 code, which allocates for every vector operation, and again each
 * time a profile-predicate trap sent the method back to be recompiled).
 *
 * <p>Why spelled out, repeating {@link VectorMath}'s exponential rather than calling it: C1 does
 * not inline a helper over 35 bytes of bytecode, or past its depth limit, so C1-compiled callers
 * call such helpers, and C2 then compiles the helpers on their own (1.0-1.6 KB nmethods each,
 * boxing included). A later C2 compile of a loop calling one inlines it only at a call site that
 * looks hot. When the loop's own profile is missing, because it ran in tier-2 code, which keeps
 * none (as happens while C2's queue is long), the site counts as cold, and C2 refuses a callee
 * already compiled into more than InlineSmallCode/4 = 625 bytes ("already compiled into a medium
 * method"). Measured with {@code -XX:+LogCompilation}, which slows compilation: 2 of 6 runs of a
 * loop of one-thread LSTM forwards (T50 B64 I256 H256) boxed for good, 9.8 MB per forward where
 * {@code VectorMath.tanhTwoBranch} was refused in {@code Activation.run} (profile count -1), and
 * 29.5 MB where {@code Activation.sigmoid} was; without the flag, about 4 in 10 JMH forks showed
 * the 9.8 MB.
 *
 * <p>{@code VectorMathTest} checks the sigmoid bit for bit against {@link Activation#sigmoid} (the
 * same operations in the same order, so the written-out exponential too) and sweeps the tanh
 * against {@code Math.tanh} under its bound.
 */
final class StepActivations {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /** The loops take plain native segments only, whose exact class lets C2 drop per-access checks. */
  private static final Class<?> NATIVE = SegmentLoops.NATIVE;

  private StepActivations() {}

  /**
   * {@code y = 1 / (1 + e^-x)} over {@code n} floats at byte offsets xAt and yAt of plain native
   * segments; y may be x. The same bits as {@link Activation#sigmoid}: its exponential is
   * {@link VectorMath#expUpTo88}, written out.
   */
  static void sigmoid(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    logistic(false, n, x, xAt, y, yAt);
  }

  /**
   * {@code y = tanh x} over {@code n} floats at byte offsets xAt and yAt of plain native segments;
   * y may be x. Relative error at most {@code 6u}, NaN for NaN, ±1 at ±inf, {@code tanh(-0) = +0},
   * like {@link VectorMath#tanh}, but in the older two-branch form: {@code 1 - 2/(1 + e^2|x|)}
   * beside the odd Taylor polynomial, both evaluated on every lane and blended.
   *
   * <p>Why this form in the steps: with {@link VectorMath#tanh}'s expm1 in them, the compiled step
   * ran past C2's inlining node budget (NodeCountInliningCutoff), an exponential helper was left
   * out of line, and its vectors were boxed: 39 MB (LSTM) and 26 MB (GRU) per forward+backward at
   * T50 B64 I256 H256. That was before the helpers were spelled out here; the expm1 form has not
   * been measured since. The standalone activation kernel takes the faster {@link VectorMath#tanh}.
   *
   * <p>Derivation. For {@code |x| >= 0.55}: {@code e = e^{2|x|}} carries 3u
   * ({@link VectorMath#expUpTo88}; 2|x| is exact, and above 88.37 e is inf and the result exactly
   * 1), {@code 1 + e} one more u, {@code q = 2/(1 + e)} one more (computed as twice
   * {@code 1/(1 + e)}: doubling is exact, so it is the same float): 5u relative on
   * {@code q <= 0.4995}; {@code 1 - q >= 0.5005} then carries {@code 5u q/(1 - q) + u < 6u}. For
   * {@code |x| < 0.55}: the Taylor series to x^19 truncates at {@code 0.01u} relative (its terms
   * shrink by {@code x^2 (2/pi)^2 < 0.123} each); Horner in {@code s = x^2 <= 0.3025} (rounded by
   * u, moving p by {@code s/3 u < 0.1u}) with alternating, shrinking terms rounds to under 1.2u in
   * p, the float coefficients add under 0.1u, and the final product by x one u: under 2.5u.
   */
  static void tanh(int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    logistic(true, n, x, xAt, y, yAt);
  }

  /**
   * Both functions in one loop, so that the exponential is written out once: each takes
   * {@code w = 1/(1 + e^z)}, the sigmoid with {@code z = -x} (w is its result), tanh with
   * {@code z = 2|x|} ({@code 1 - 2w} is its large-argument branch). The callers pass a constant.
   * Whole vectors go unmasked, a last partial one masked.
   */
  private static void logistic(boolean tanh, int n, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (x.getClass() != NATIVE || y.getClass() != NATIVE) {
      throw SegmentLoops.notStaged();
    }
    for (int i = 0; i < n; i += LANES) {
      boolean whole = i + LANES <= n;
      FloatVector v = whole ? FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, x, xAt + 4L * i, ORDER, SPECIES.indexInRange(i, n));
      FloatVector a = v.abs();
      FloatVector z = tanh ? a.add(a) : v.neg();
      // e^z as VectorMath.expUpTo88 (the class comment says why it is written out).
      FloatVector biased = z.fma(V_LOG2E, V_BIASED_ROUNDING);
      FloatVector reduction = biased.sub(V_BIASED_ROUNDING);
      FloatVector r = reduction.fma(V_MINUS_LN2_C2, reduction.fma(V_MINUS_LN2_C1, z));
      FloatVector e = r.fma(X6, X5).fma(r, X4).fma(r, X3).fma(r, X2).fma(r, E1).fma(r, E0)
          .mul(biased.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats())
          .blend(0f, z.compare(VectorOperators.LT, UNDERFLOW))
          .blend(Float.POSITIVE_INFINITY, z.compare(VectorOperators.GT, OVERFLOW));
      FloatVector result = E0.div(e.add(E0));
      if (tanh) {
        FloatVector large = E0.sub(result.add(result));
        FloatVector s = v.mul(v);
        FloatVector small = s.fma(T19, T17).fma(s, T15).fma(s, T13).fma(s, T11).fma(s, T9)
            .fma(s, T7).fma(s, T5).fma(s, T3).fma(s, E0).mul(a);
        FloatVector magnitude = large.blend(small, a.compare(VectorOperators.LT, TANH_SERIES_LIMIT));
        result = magnitude.blend(magnitude.neg(), v.compare(VectorOperators.LT, 0f));
      }
      if (whole) {
        result.intoMemorySegment(y, yAt + 4L * i, ORDER);
      } else {
        result.intoMemorySegment(y, yAt + 4L * i, ORDER, SPECIES.indexInRange(i, n));
      }
    }
  }

  /** Below this |x| tanh is the odd Taylor polynomial, above it {@code 1 - 2/(1 + e^2|x|)}. */
  private static final float TANH_SERIES_LIMIT = 0.55f;
  /** Taylor coefficients of tanh (x^3, ..., x^19; that of x is 1): {@code 2^2n (2^2n - 1) B_2n / (2n)!}. */
  private static final FloatVector T3 = VectorMath.all(-0.33333333333333333f);
  private static final FloatVector T5 = VectorMath.all(0.13333333333333333f);
  private static final FloatVector T7 = VectorMath.all(-0.053968253968253968f);
  private static final FloatVector T9 = VectorMath.all(0.021869488536155203f);
  private static final FloatVector T11 = VectorMath.all(-0.0088632355299021966f);
  private static final FloatVector T13 = VectorMath.all(0.0035921280365724810f);
  private static final FloatVector T15 = VectorMath.all(-0.0014558343870513183f);
  private static final FloatVector T17 = VectorMath.all(0.00059002744094558595f);
  private static final FloatVector T19 = VectorMath.all(-0.00023912911424355248f);
}
