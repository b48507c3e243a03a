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

  /**
   * Gate floats per thread below which a step's pointwise pass stays on one thread: waking a worker
   * and meeting it again costs a few microseconds, the pass about 1 ns per gate float.
   */
  private static final int MIN_GATE_FLOATS_PER_PART = 16 * 1024;

  /**
   * Into how many pieces of batch rows one step's pointwise pass is cut: one per thread when the
   * step is big enough and every buffer can be shared with the pool's threads, else one.
   */
  final int rowParts(Parallelism parallelism, boolean shareable, int gates) {
    long floats = (long) batch * gates * hidden;
    return shareable ? (int) Math.max(1, Math.min(Math.min(parallelism.threads(), batch),
        floats / MIN_GATE_FLOATS_PER_PART)) : 1;
  }

  /** The first batch row of piece {@code part} of {@code parts}. */
  final int firstRow(int part, int parts) {
    return (int) ((long) batch * part / parts);
  }

  /** Step t's forward pointwise pass over batch rows [from, to), with the call's buffers. */
  abstract void forwardRows(int t, int from, int to, StepRows call);

  /** Step t's backward pointwise pass over batch rows [from, to), with the call's buffers. */
  abstract void backwardRows(int t, int from, int to, StepRows call);

  /**
   * One step's pointwise pass, cut by batch rows between threads; rows are independent, so the
   * result does not depend on the cut. One instance per calling thread, reused by every call (its
   * fields are set for a call and cleared after it), so a call allocates nothing.
   */
  static final class StepRows implements ParallelTask {
    private static final ThreadLocal<StepRows> PER_THREAD = ThreadLocal.withInitial(StepRows::new);

    private RecurrentLayer layer;
    private boolean backward;
    MemorySegment workspace;
    long workspaceOffset;
    MemorySegment y;
    long yOffset;
    MemorySegment h0;
    long h0Offset;
    /** Written by the calling thread before each invoke, which publishes it to the workers. */
    int step;

    static StepRows forCurrentThread() {
      return PER_THREAD.get();
    }

    void set(RecurrentLayer layer, boolean backward, MemorySegment workspace, long workspaceOffset, MemorySegment y,
        long yOffset, MemorySegment h0, long h0Offset) {
      this.layer = layer;
      this.backward = backward;
      this.workspace = workspace;
      this.workspaceOffset = workspaceOffset;
      this.y = y;
      this.yOffset = yOffset;
      this.h0 = h0;
      this.h0Offset = h0Offset;
    }

    void clear() {
      layer = null;
      workspace = null;
      y = null;
      h0 = null;
    }

    @Override
    public void run(int part, int parts) {
      int from = layer.firstRow(part, parts);
      int to = layer.firstRow(part + 1, parts);
      if (backward) {
        layer.backwardRows(step, from, to, this);
      } else {
        layer.forwardRows(step, from, to, this);
      }
    }
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "[T=" + steps + ", B=" + batch + ", I=" + input + ", H=" + hidden + "]";
  }
}
