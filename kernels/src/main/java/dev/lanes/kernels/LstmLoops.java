package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused pointwise passes of {@link Lstm} over one batch row of H hidden units, on byte
 * offsets. A gate row holds {@code [i | f | g | o]}, H floats each, already activated. Each pass
 * is one loop whose only out-of-line arithmetic is {@link VectorMath#tanh}, small enough for C2
 * to inline whole.
 */
final class LstmLoops {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  private LstmLoops() {}

  private static FloatVector load(MemorySegment s, long at, long j, boolean full, VectorMask<Float> tail) {
    return full ? FloatVector.fromMemorySegment(SPECIES, s, at + 4 * j, ORDER)
        : FloatVector.fromMemorySegment(SPECIES, s, at + 4 * j, ORDER, tail);
  }

  private static void store(FloatVector v, MemorySegment s, long at, long j, boolean full, VectorMask<Float> tail) {
    if (full) {
      v.intoMemorySegment(s, at + 4 * j, ORDER);
    } else {
      v.intoMemorySegment(s, at + 4 * j, ORDER, tail);
    }
  }

  /** {@code c = f c_prev + i g}, {@code h = o tanh(c)}. */
  static void cellForward(int hidden, MemorySegment gates, long gAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment c, long cAt, MemorySegment h, long hAt) {
    long quarter = 4L * hidden;
    int whole = hidden - hidden % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, hidden);
    for (int j = 0; j < hidden; j += LANES) {
      boolean full = j < whole;
      FloatVector i = load(gates, gAt, j, full, tail);
      FloatVector f = load(gates, gAt + quarter, j, full, tail);
      FloatVector g = load(gates, gAt + 2 * quarter, j, full, tail);
      FloatVector o = load(gates, gAt + 3 * quarter, j, full, tail);
      FloatVector cell = f.fma(load(cPrev, cPrevAt, j, full, tail), i.mul(g));
      store(cell, c, cAt, j, full, tail);
      store(o.mul(VectorMath.tanh(cell)), h, hAt, j, full, tail);
    }
  }

  /**
   * One step back through the cell. In: the activated gates, c_prev and c, dh (the gradient of
   * h_t, upstream included) and dc (of c_t from the step after). Out: the gradients of the four
   * pre-activations written over the gate row, and dc replaced by the gradient of c_prev.
   * <pre>
   *   do = dh tanh(c);   dc += dh o (1 - tanh(c)^2)
   *   dI = dc g i (1 - i);   dF = dc c_prev f (1 - f);   dG = dc i (1 - g^2);   dO = do o (1 - o)
   *   dc_prev = dc f
   * </pre>
   */
  static void cellBackward(int hidden, MemorySegment gates, long gAt, MemorySegment cPrev, long cPrevAt,
      MemorySegment c, long cAt, MemorySegment dh, long dhAt, MemorySegment dc, long dcAt) {
    long quarter = 4L * hidden;
    int whole = hidden - hidden % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, hidden);
    for (int j = 0; j < hidden; j += LANES) {
      boolean full = j < whole;
      FloatVector i = load(gates, gAt, j, full, tail);
      FloatVector f = load(gates, gAt + quarter, j, full, tail);
      FloatVector g = load(gates, gAt + 2 * quarter, j, full, tail);
      FloatVector o = load(gates, gAt + 3 * quarter, j, full, tail);
      FloatVector d = load(dh, dhAt, j, full, tail);
      FloatVector tc = VectorMath.tanh(load(c, cAt, j, full, tail));
      FloatVector dcell = d.mul(o).mul(tc.neg().fma(tc, ONE)).add(load(dc, dcAt, j, full, tail));
      store(dcell.mul(g).mul(i).mul(ONE.sub(i)), gates, gAt, j, full, tail);
      store(dcell.mul(load(cPrev, cPrevAt, j, full, tail)).mul(f).mul(ONE.sub(f)), gates, gAt + quarter, j, full,
          tail);
      store(dcell.mul(i).mul(g.neg().fma(g, ONE)), gates, gAt + 2 * quarter, j, full, tail);
      store(d.mul(tc).mul(o).mul(ONE.sub(o)), gates, gAt + 3 * quarter, j, full, tail);
      store(dcell.mul(f), dc, dcAt, j, full, tail);
    }
  }

  private static final FloatVector ONE = VectorMath.all(1f);
}
