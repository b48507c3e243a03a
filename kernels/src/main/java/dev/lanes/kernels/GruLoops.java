package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused pointwise passes of {@link Gru} over one batch row of H hidden units, on byte
 * offsets. A gate row holds {@code [r | z | n]}, H floats each. Each pass reads at most four
 * rows, so that C1 can compile it and it reaches C2 (see {@link LstmLoops}); the activations
 * themselves run through {@link Activation#runInStep}.
 */
final class GruLoops {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  private static final FloatVector ONE = VectorMath.all(1f);

  private GruLoops() {}

  /** {@code n_pre = gi_n + r gh_n} over the n slot, saving {@code gh_n} for the backward. */
  static void candidateInput(int hidden, MemorySegment gates, long rAt, long nAt, MemorySegment gh, long ghnAt,
      MemorySegment saved, long savedAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector recurrent = FloatVector.fromMemorySegment(SPECIES, gh, ghnAt + at, ORDER, m);
      recurrent.intoMemorySegment(saved, savedAt + at, ORDER, m);
      FloatVector.fromMemorySegment(SPECIES, gates, rAt + at, ORDER, m).fma(recurrent, FloatVector.fromMemorySegment(SPECIES, gates, nAt + at, ORDER, m)).intoMemorySegment(gates, nAt + at, ORDER, m);
    }
  }

  /** {@code h = n + z (h_prev - n)}, that is {@code (1 - z) n + z h_prev}. */
  static void hiddenState(int hidden, MemorySegment gates, long zAt, long nAt, MemorySegment hPrev, long hPrevAt,
      MemorySegment h, long hAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector n = FloatVector.fromMemorySegment(SPECIES, gates, nAt + at, ORDER, m);
      FloatVector.fromMemorySegment(SPECIES, gates, zAt + at, ORDER, m).fma(FloatVector.fromMemorySegment(SPECIES, hPrev, hPrevAt + at, ORDER, m).sub(n), n).intoMemorySegment(h, hAt + at, ORDER, m);
    }
  }

  /**
   * Backward, first pass: from dh (upstream included), z, n and h_prev, writes
   * {@code dz_pre = dh (h_prev - n) z (1 - z)} over z, {@code dn_pre = dh (1 - z)(1 - n^2)} over
   * n, and {@code dh z} (the direct path to h_prev) into {@code direct}.
   */
  static void updateAndCandidate(int hidden, MemorySegment gates, long zAt, long nAt, MemorySegment hPrev,
      long hPrevAt, MemorySegment dh, long dhAt, MemorySegment direct, long directAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector z = FloatVector.fromMemorySegment(SPECIES, gates, zAt + at, ORDER, m);
      FloatVector n = FloatVector.fromMemorySegment(SPECIES, gates, nAt + at, ORDER, m);
      FloatVector d = FloatVector.fromMemorySegment(SPECIES, dh, dhAt + at, ORDER, m);
      d.mul(FloatVector.fromMemorySegment(SPECIES, hPrev, hPrevAt + at, ORDER, m).sub(n)).mul(z).mul(ONE.sub(z)).intoMemorySegment(gates, zAt + at, ORDER, m);
      d.mul(ONE.sub(z)).mul(n.neg().fma(n, ONE)).intoMemorySegment(gates, nAt + at, ORDER, m);
      d.mul(z).intoMemorySegment(direct, directAt + at, ORDER, m);
    }
  }

  /**
   * Backward, second pass: with {@code dn_pre} in the n slot, writes {@code dgh_n = dn_pre r} and
   * {@code dr_pre = dn_pre gh_n r (1 - r)} over r.
   */
  static void reset(int hidden, MemorySegment gates, long rAt, long nAt, MemorySegment savedGhn, long ghnAt,
      MemorySegment dgh, long dghnAt) {
    for (int j = 0; j < hidden; j += LANES) {
      VectorMask<Float> m = SPECIES.indexInRange(j, hidden);
      long at = 4L * j;
      FloatVector r = FloatVector.fromMemorySegment(SPECIES, gates, rAt + at, ORDER, m);
      FloatVector dn = FloatVector.fromMemorySegment(SPECIES, gates, nAt + at, ORDER, m);
      dn.mul(r).intoMemorySegment(dgh, dghnAt + at, ORDER, m);
      dn.mul(FloatVector.fromMemorySegment(SPECIES, savedGhn, ghnAt + at, ORDER, m)).mul(r).mul(ONE.sub(r)).intoMemorySegment(gates, rAt + at, ORDER, m);
    }
  }
}
