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
   * Gate floats of one step per thread below which a sequence stays on one thread: waking a worker
   * and meeting it again costs a few microseconds, the pointwise pass about 1 ns per gate float.
   */
  private static final int MIN_GATE_FLOATS_PER_PART = 16 * 1024;

  /**
   * Into how many pieces of batch rows a sequence is cut: one per thread when a step is big enough
   * and every buffer can be shared with the pool's threads, else one.
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

  /**
   * Forward step t for batch rows [from, to): the recurrent GEMM of those rows on the calling thread,
   * then the activations and the state update.
   */
  abstract void forwardStep(int t, int from, int to, SequenceRows call);

  /**
   * Backward step t for batch rows [from, to): the gate gradients, then the GEMM that carries those
   * rows' dh to step t - 1, on the calling thread.
   */
  abstract void backwardStep(int t, int from, int to, SequenceRows call);

  /**
   * A whole sequence, forward or backward, cut by batch rows between threads.
   *
   * <p>Why whole sequences and not steps: row b of step t's gates depends on row b of h_{t-1} only
   * (and in the backward, row b of dh_{t-1} on row b of step t's gate gradients), so a thread that
   * owns a range of batch rows runs all T steps, GEMMs included, without ever waiting for another.
   * Cutting each step instead met the other thread twice per step (once after the step's GEMM, once
   * after its pointwise pass): 4T hand-offs per forward and backward, each one a wait on whichever
   * core the shared machine had slowed. The GEMMs on a thread's rows sum in the same order as the
   * whole batch's, so the bits do not depend on the cut.
   *
   * <p>One instance per calling thread, reused by every call (its fields are set for a call and
   * cleared after it), so a call allocates nothing.
   */
  static final class SequenceRows implements ParallelTask {
    private static final ThreadLocal<SequenceRows> PER_THREAD = ThreadLocal.withInitial(SequenceRows::new);

    private RecurrentLayer layer;
    private boolean backward;
    MemorySegment workspace;
    long workspaceOffset;
    MemorySegment y;
    long yOffset;
    MemorySegment h0;
    long h0Offset;
    /** The step GEMMs' packed op(W_hh); null for a forward with no recurrent product (T = 1, no h0). */
    PackedB recurrent;
    /** The backward's dy, or null. */
    MemorySegment dy;
    long dyOffset;
    /** The GRU forward's b_hh, or null. */
    MemorySegment bHh;
    long bHhOffset;

    static SequenceRows forCurrentThread() {
      return PER_THREAD.get();
    }

    void set(RecurrentLayer layer, boolean backward, MemorySegment workspace, long workspaceOffset, MemorySegment y,
        long yOffset, MemorySegment h0, long h0Offset, PackedB recurrent) {
      this.layer = layer;
      this.backward = backward;
      this.workspace = workspace;
      this.workspaceOffset = workspaceOffset;
      this.y = y;
      this.yOffset = yOffset;
      this.h0 = h0;
      this.h0Offset = h0Offset;
      this.recurrent = recurrent;
      this.dy = null;
      this.bHh = null;
    }

    void clear() {
      layer = null;
      workspace = null;
      y = null;
      h0 = null;
      recurrent = null;
      dy = null;
      bHh = null;
    }

    @Override
    public void run(int part, int parts) {
      int from = layer.firstRow(part, parts);
      int to = layer.firstRow(part + 1, parts);
      if (from >= to) {
        return;
      }
      if (backward) {
        for (int t = layer.steps - 1; t >= 0; t--) {
          layer.backwardStep(t, from, to, this);
        }
      } else {
        for (int t = 0; t < layer.steps; t++) {
          layer.forwardStep(t, from, to, this);
        }
      }
    }
  }

  @Override
  public String toString() {
    return getClass().getSimpleName() + "[T=" + steps + ", B=" + batch + ", I=" + input + ", H=" + hidden + "]";
  }
}
