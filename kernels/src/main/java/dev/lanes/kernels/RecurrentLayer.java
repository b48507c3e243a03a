package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * What the recurrent layers ({@link Lstm}, {@link Gru}) share: their dimensions, fixed and
 * validated at construction, and the checks of their buffers. The layers themselves keep their
 * equations, workspace layout, forward and backward.
 */
public abstract sealed class RecurrentLayer permits Lstm, Gru {
  final int steps;
  final int batch;
  final int input;
  final int hidden;
  final RecurrentChecks checks;

  /**
   * W_hh packed once per call for the T step GEMMs, which would otherwise re-pack it at every step
   * (measured at T50 B64 H256: 45 to 64 GF/s for the forward steps on one thread, 50 to 57 for the
   * backward's). One per calling thread, grown to the largest layer the thread has run, so a call
   * allocates nothing once its thread has seen its shape.
   */
  private static final ThreadLocal<PackedB[]> PACKED_WEIGHT = ThreadLocal.withInitial(() -> new PackedB[1]);

  RecurrentLayer(int steps, int batch, int input, int hidden, int gates) {
    RecurrentChecks.dimensions(steps, batch, input, hidden, gates);
    this.steps = steps;
    this.batch = batch;
    this.input = input;
    this.hidden = hidden;
    this.checks = new RecurrentChecks(steps, batch, input, hidden, gates);
  }

  public int steps() {
    return steps;
  }

  public int batch() {
    return batch;
  }

  public int input() {
    return input;
  }

  public int hidden() {
    return hidden;
  }

  /** Floats of workspace a forward and its backward need. */
  public abstract long workspaceFloats();

  /**
   * The calling thread's packed copy of op(W), k x n, with W validated by the caller; the result is
   * only valid until this thread's next recurrent call.
   */
  static PackedB packWeight(boolean transposed, int k, int n, MemorySegment w, long wOffset, int ldw) {
    PackedB[] slot = PACKED_WEIGHT.get();
    if (slot[0] == null || !slot[0].fits(k, n)) {
      slot[0] = PackedB.allocate(k, n);
    }
    slot[0].packValidated(transposed, k, n, w, wOffset, ldw);
    return slot[0];
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "[T=" + steps + ", B=" + batch + ", I=" + input + ", H=" + hidden + "]";
  }
}
