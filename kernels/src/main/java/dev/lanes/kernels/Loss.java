package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementwise losses over {@code n} contiguous floats, mean-reduced as PyTorch's default
 * ({@code reduction='mean'}), each returning the loss and writing its gradient in the same pass.
 * The fused softmax cross-entropy is in {@link Softmax}.
 *
 * <ul>
 *   <li>{@link #binaryCrossEntropyWithLogits}: PyTorch's {@code binary_cross_entropy_with_logits},
 *       in the stable form {@code max(x, 0) - x t + log1p(e^-|x|)}, never {@code log(sigmoid(x))};
 *       gradient {@code (sigmoid(x) - t) / n}.
 *   <li>{@link #meanSquaredError}: {@code mean((p - t)^2)}, gradient {@code 2 (p - t) / n}.
 * </ul>
 * The gradient buffer may be null (the loss alone) or the first input (overwritten). The mean of
 * nothing (n = 0) is NaN, as in PyTorch.
 *
 * <h2>Summation</h2>
 * Blocked: each block of {@value #BLOCK} floats is summed in vector lanes (at most
 * {@code BLOCK / 4} additions per lane on 128-bit vectors), its lanes reduced (4 more levels at
 * most), and the block sums added in double. The sum is then within {@code (BLOCK/4 + 5) u} of
 * the exact sum of the computed terms, relative to the sum of their magnitudes, whatever n is;
 * a single running sum would grow as {@code n u}.
 */
public final class Loss {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /** Floats per block of the blocked sum. */
  public static final int BLOCK = 1024;

  private Loss() {}

  /**
   * Mean binary cross-entropy of {@code sigmoid(x)} against targets t (usually in [0, 1]).
   * Each term is within {@code 2u |x|(1 + |t|) + 6u L + u |term|} of exact, {@code L = log1p(e^-|x|)},
   * and each gradient entry within {@code (5u sigmoid(x) + 2u |sigmoid(x) - t|) / n}.
   */
  public static float binaryCrossEntropyWithLogits(long n, MemorySegment x, long xOffset, MemorySegment t,
      long tOffset, MemorySegment dx, long dxOffset) {
    check(n, x, xOffset, "x", t, tOffset, "t", dx, dxOffset, "dx");
    float inverse = 1f / n;
    float[] lanes = LANE_SCRATCH.get();
    double total = 0;
    for (long done = 0; done < n; done += BLOCK) {
      long length = Math.min(BLOCK, n - done);
      total += bceBlock(length, x, 4 * (xOffset + done), t, 4 * (tOffset + done), dx,
          dx == null ? 0 : 4 * (dxOffset + done), inverse, lanes);
    }
    return (float) (total / n);
  }

  /**
   * Mean squared error of predictions p against targets t. Each term is within {@code 3u (p-t)^2},
   * each gradient entry within {@code 3u |2 (p - t) / n|}.
   */
  public static float meanSquaredError(long n, MemorySegment p, long pOffset, MemorySegment t, long tOffset,
      MemorySegment dp, long dpOffset) {
    check(n, p, pOffset, "p", t, tOffset, "t", dp, dpOffset, "dp");
    float twiceInverse = 2f / n;
    double total = 0;
    for (long done = 0; done < n; done += BLOCK) {
      long length = Math.min(BLOCK, n - done);
      total += mseBlock(length, p, 4 * (pOffset + done), t, 4 * (tOffset + done), dp,
          dp == null ? 0 : 4 * (dpOffset + done), twiceInverse);
    }
    return (float) (total / n);
  }

  /** {@link #binaryCrossEntropyWithLogits(long, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays; dx may be null. */
  public static float binaryCrossEntropyWithLogits(int n, float[] x, int xOffset, float[] t, int tOffset, float[] dx,
      int dxOffset) {
    return binaryCrossEntropyWithLogits(n, Checks.array(x, "x"), xOffset, Checks.array(t, "t"), tOffset,
        dx == null ? null : MemorySegment.ofArray(dx), dxOffset);
  }

  /** {@link #meanSquaredError(long, MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays; dp may be null. */
  public static float meanSquaredError(int n, float[] p, int pOffset, float[] t, int tOffset, float[] dp,
      int dpOffset) {
    return meanSquaredError(n, Checks.array(p, "p"), pOffset, Checks.array(t, "t"), tOffset,
        dp == null ? null : MemorySegment.ofArray(dp), dpOffset);
  }

  private static void check(long n, MemorySegment a, long aOffset, String aName, MemorySegment b, long bOffset,
      String bName, MemorySegment grad, long gradOffset, String gradName) {
    Checks.nonNegative(n, "n");
    Elementwise.span(n, a, aOffset, aName, false);
    Elementwise.span(n, b, bOffset, bName, false);
    if (grad != null) {
      Elementwise.span(n, grad, gradOffset, gradName, true);
    }
  }

  /*
   * Block loops: the tail is a branch inside the loop (one call site for the vector code, see
   * Softmax.expSum), and lanes past the end are left out of the sum by the masked add.
   */

  /**
   * Returns the block's sum through {@link FloatLanes#sumStored}, the lanes stored into
   * {@code lanes}: C2 runs out of its inlining node budget (NodeCountInliningCutoff) in this loop
   * just before {@link FloatLanes#sum}, and the vector handed to it was boxed, 96 B per block
   * (24 KB per call of 256K floats, measured in every run).
   */
  private static float bceBlock(long n, MemorySegment x, long xAt, MemorySegment t, long tAt, MemorySegment dx,
      long dxAt, float inverse, float[] lanes) {
    long whole = n - n % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, n);
    FloatVector sum = FloatVector.zero(SPECIES);
    for (long i = 0; i < n; i += LANES) {
      boolean full = i < whole;
      FloatVector v = full ? FloatVector.fromMemorySegment(SPECIES, x, xAt + 4 * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, x, xAt + 4 * i, ORDER, tail);
      FloatVector target = full ? FloatVector.fromMemorySegment(SPECIES, t, tAt + 4 * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, t, tAt + 4 * i, ORDER, tail);
      FloatVector e = VectorMath.expUpTo88(v.abs().neg());
      FloatVector term = v.max(0f).sub(v.mul(target)).add(VectorMath.log1pUnit(e));
      sum = full ? sum.add(term) : sum.add(term, tail);
      if (dx != null) {
        // sigmoid(x) from the same e = e^-|x|: 1/(1+e) for x >= 0, e/(1+e) below.
        FloatVector s = ONE.div(e.add(ONE));
        s = s.blend(e.mul(s), v.compare(VectorOperators.LT, 0f));
        FloatVector g = s.sub(target).mul(inverse);
        if (full) {
          g.intoMemorySegment(dx, dxAt + 4 * i, ORDER);
        } else {
          g.intoMemorySegment(dx, dxAt + 4 * i, ORDER, tail);
        }
      }
    }
    sum.intoArray(lanes, 0);
    return FloatLanes.sumStored(lanes);
  }

  private static final FloatVector ONE = VectorMath.all(1f);
  /** One vector of floats per thread for {@link #bceBlock}'s sum. */
  private static final ThreadLocal<float[]> LANE_SCRATCH = ThreadLocal.withInitial(() -> new float[LANES]);

  private static float mseBlock(long n, MemorySegment p, long pAt, MemorySegment t, long tAt, MemorySegment dp,
      long dpAt, float twiceInverse) {
    long whole = n - n % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, n);
    FloatVector sum = FloatVector.zero(SPECIES);
    for (long i = 0; i < n; i += LANES) {
      boolean full = i < whole;
      FloatVector v = full ? FloatVector.fromMemorySegment(SPECIES, p, pAt + 4 * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, p, pAt + 4 * i, ORDER, tail);
      FloatVector target = full ? FloatVector.fromMemorySegment(SPECIES, t, tAt + 4 * i, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, t, tAt + 4 * i, ORDER, tail);
      FloatVector d = v.sub(target);
      sum = full ? d.fma(d, sum) : sum.add(d.mul(d), tail);
      if (dp != null) {
        FloatVector g = d.mul(twiceInverse);
        if (full) {
          g.intoMemorySegment(dp, dpAt + 4 * i, ORDER);
        } else {
          g.intoMemorySegment(dp, dpAt + 4 * i, ORDER, tail);
        }
      }
    }
    return FloatLanes.sum(sum);
  }
}
