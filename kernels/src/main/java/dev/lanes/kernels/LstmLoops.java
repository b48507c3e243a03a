package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused pointwise passes of {@link Lstm} over one batch row of H hidden units, on byte
 * offsets. A gate row holds {@code [i | f | g | o]}, H floats each, already activated. Each pass
 * is one loop that calls the Vector API directly and no helper of its own taking or returning a
 * vector (a small load helper was left out of line as "too large" on these short rows, and
 * boxed). tanh(c) is its own pass, {@link StepActivations#tanh}, for the reason given there.
 * Masked steps: the rows are short and in L1, and the passes are a small part of a step next to
 * its GEMM.
 */
final class LstmLoops {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private LstmLoops() {}

  /*
   * Every pass is a loop over at most three or four input rows. A pass holding all four gates, the
   * states and tanh was too big for C1 ("out of virtual registers in linear scan"), never got
   * profiled, stayed in tier-2 code where the Vector API is not intrinsified, and boxed every
   * vector (44 MB per forward of T50 B64 H256).
   */

  /** {@code c = f c_prev + i g}, then {@code h = o tanh(c)}, h first holding tanh(c). */
  static void cellForward(int hidden, MemorySegment gates, long gAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment c, long cAt, MemorySegment h, long hAt) {
    cellState(hidden, gates, gAt, cPrev, cPrevAt, c, cAt);
    tanh(hidden, c, cAt, h, hAt);
    gateOutput(hidden, gates, gAt + 12L * hidden, h, hAt);
  }

  private static void cellState(int hidden, MemorySegment gates, long gAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment c, long cAt) {
    long quarter = 4L * hidden;
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector ig = FloatVector.fromMemorySegment(SPECIES, gates, gAt + at, ORDER, m)
          .mul(FloatVector.fromMemorySegment(SPECIES, gates, gAt + 2 * quarter + at, ORDER, m));
      FloatVector.fromMemorySegment(SPECIES, gates, gAt + quarter + at, ORDER, m)
          .fma(FloatVector.fromMemorySegment(SPECIES, cPrev, cPrevAt + at, ORDER, m), ig)
          .intoMemorySegment(c, cAt + at, ORDER, m);
    }
  }

  /**
   * {@code y = tanh x} over a row: on native memory straight through {@link StepActivations#tanh},
   * otherwise staged by {@link Activation#runInStep} (a branch the native case never takes, so C2
   * leaves the staging driver out of this method's compiled units).
   */
  private static void tanh(int hidden, MemorySegment x, long xAt, MemorySegment y, long yAt) {
    if (SegmentLoops.allNative(x, y)) {
      StepActivations.tanh(hidden, x, xAt, y, yAt);
    } else {
      Activation.TANH.runInStep(hidden, x, xAt, y, yAt);
    }
  }

  /** {@code h = o h}: h held tanh(c). */
  private static void gateOutput(int hidden, MemorySegment gates, long oAt, MemorySegment h, long hAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector.fromMemorySegment(SPECIES, gates, oAt + at, ORDER, m)
          .mul(FloatVector.fromMemorySegment(SPECIES, h, hAt + at, ORDER, m)).intoMemorySegment(h, hAt + at, ORDER, m);
    }
  }

  /**
   * One step back through the cell. In: the activated gates, c_prev and c, dh (the gradient of
   * h_t, upstream included) and dc (of c_t from the step after). Out: the gradients of the four
   * pre-activations written over the gate row, dc replaced by the gradient of c_prev, dh by
   * {@code do} (the caller recomputes dh from the gates next), and c by tanh(c) (the steps run
   * backward, so c_t was last needed, as c_prev, by step t + 1).
   * <pre>
   *   do = dh tanh(c);   dc += dh o (1 - tanh(c)^2)
   *   dI = dc g i (1 - i);   dG = dc i (1 - g^2);   dF = dc c_prev f (1 - f);   dO = do o (1 - o)
   *   dc_prev = dc f
   * </pre>
   */
  static void cellBackward(int hidden, MemorySegment gates, long gAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment c, long cAt, MemorySegment dh, long dhAt, MemorySegment dc, long dcAt) {
    long quarter = 4L * hidden;
    tanh(hidden, c, cAt, c, cAt);
    throughTanh(hidden, gates, gAt + 3 * quarter, c, cAt, dh, dhAt, dc, dcAt);
    inputAndCandidate(hidden, gates, gAt, gAt + 2 * quarter, dc, dcAt);
    forgetAndCarry(hidden, gates, gAt + quarter, cPrev, cPrevAt, dc, dcAt);
    output(hidden, gates, gAt + 3 * quarter, dh, dhAt);
  }

  /** {@code dc += dh o (1 - tanh(c)^2)}, {@code dh = dh tanh(c)} (that is, do); c holds tanh(c). */
  private static void throughTanh(int hidden, MemorySegment gates, long oAt, MemorySegment c, long cAt,
      MemorySegment dh, long dhAt, MemorySegment dc, long dcAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector d = FloatVector.fromMemorySegment(SPECIES, dh, dhAt + at, ORDER, m);
      FloatVector tc = FloatVector.fromMemorySegment(SPECIES, c, cAt + at, ORDER, m);
      d.mul(FloatVector.fromMemorySegment(SPECIES, gates, oAt + at, ORDER, m)).mul(tc.neg().fma(tc, ONE))
          .add(FloatVector.fromMemorySegment(SPECIES, dc, dcAt + at, ORDER, m)).intoMemorySegment(dc, dcAt + at, ORDER, m);
      d.mul(tc).intoMemorySegment(dh, dhAt + at, ORDER, m);
    }
  }

  /** {@code dI = dc g i (1 - i)} and {@code dG = dc i (1 - g^2)}, over i and g. */
  private static void inputAndCandidate(int hidden, MemorySegment gates, long iAt, long gAt, MemorySegment dc,
      long dcAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector i = FloatVector.fromMemorySegment(SPECIES, gates, iAt + at, ORDER, m);
      FloatVector g = FloatVector.fromMemorySegment(SPECIES, gates, gAt + at, ORDER, m);
      FloatVector dcell = FloatVector.fromMemorySegment(SPECIES, dc, dcAt + at, ORDER, m);
      dcell.mul(g).mul(i).mul(ONE.sub(i)).intoMemorySegment(gates, iAt + at, ORDER, m);
      dcell.mul(i).mul(g.neg().fma(g, ONE)).intoMemorySegment(gates, gAt + at, ORDER, m);
    }
  }

  /** {@code dF = dc c_prev f (1 - f)} over f, and {@code dc = dc f}. */
  private static void forgetAndCarry(int hidden, MemorySegment gates, long fAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment dc, long dcAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector f = FloatVector.fromMemorySegment(SPECIES, gates, fAt + at, ORDER, m);
      FloatVector dcell = FloatVector.fromMemorySegment(SPECIES, dc, dcAt + at, ORDER, m);
      dcell.mul(FloatVector.fromMemorySegment(SPECIES, cPrev, cPrevAt + at, ORDER, m)).mul(f).mul(ONE.sub(f))
          .intoMemorySegment(gates, fAt + at, ORDER, m);
      dcell.mul(f).intoMemorySegment(dc, dcAt + at, ORDER, m);
    }
  }

  /** {@code dO = do o (1 - o)} over o. */
  private static void output(int hidden, MemorySegment gates, long oAt, MemorySegment dOut, long doAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector o = FloatVector.fromMemorySegment(SPECIES, gates, oAt + at, ORDER, m);
      FloatVector.fromMemorySegment(SPECIES, dOut, doAt + at, ORDER, m).mul(o).mul(ONE.sub(o))
          .intoMemorySegment(gates, oAt + at, ORDER, m);
    }
  }

  private static final FloatVector ONE = VectorMath.all(1f);
}
