package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A single-layer GRU over a whole sequence, forward and backward through time, in PyTorch's
 * formulation and gate order r, z, n, with the reset gate applied after the recurrent matmul:
 * <pre>
 *   gi = x_t W_ih^T + b_ih,   gh = h_{t-1} W_hh^T + b_hh          (each [r | z | n], 3H)
 *   r = sigmoid(gi_r + gh_r),   z = sigmoid(gi_z + gh_z)
 *   n = tanh(gi_n + r gh_n)
 *   h_t = (1 - z) n + z h_{t-1}
 * </pre>
 * Layouts as in {@link Lstm}, with {@code W_ih [3H, I]}, {@code W_hh [3H, H]}, {@code b_ih},
 * {@code b_hh [3H]}, and no cell state. The input projection of all steps is one GEMM; each
 * step adds one GEMM for gh (kept apart from gi, because r multiplies only its n part) and runs
 * the activations and fused pointwise passes. The workspace ({@link #workspaceFloats()}) holds the
 * activated gates {@code [T, B, 3H]}, each step's {@code gh_n} {@code [T, B, H]}, the recurrent
 * gradients {@code [T, B, 3H]} and three rows of scratch. The backward runs two fused passes and
 * one GEMM per step, then gets the weight gradients from GEMMs merged across time. h0 may be null
 * (zeros); hT, dy, dhT, dx, the bias gradients and dh0 may be null. Gradients are overwritten.
 */
public final class Gru extends RecurrentLayer {
  private Gru(int steps, int batch, int input, int hidden) {
    super(steps, batch, input, hidden, 3);
  }

  /** A GRU over T steps of a batch of B, input size I and hidden size H, all at least 1. */
  public static Gru of(int steps, int batch, int input, int hidden) {
    return new Gru(steps, batch, input, hidden);
  }

  /** Floats of workspace a forward and its backward need: {@code T B 7H + 5 B H}. */
  @Override
  public long workspaceFloats() {
    return (long) steps * batch * 7 * hidden + 5L * batch * hidden;
  }

  private long gatesAt(long ws, int t) {
    return ws + (long) t * batch * 3 * hidden;
  }

  private long savedGhnAt(long ws, int t) {
    return ws + (long) steps * batch * 3 * hidden + (long) t * batch * hidden;
  }

  private long recurrentGradientAt(long ws, int t) {
    return ws + (long) steps * batch * 4 * hidden + (long) t * batch * 3 * hidden;
  }

  /** Scratch: gh {@code [B, 3H]} in the forward; dh and the direct path {@code [B, H]} each in the backward. */
  private long scratchAt(long ws) {
    return ws + (long) steps * batch * 7 * hidden;
  }

  /** Forward over the sequence; the workspace is kept for {@link #backward}. */
  public void forward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment bIh, long bIhOffset, MemorySegment bHh, long bHhOffset, MemorySegment h0,
      long h0Offset, MemorySegment y, long yOffset, MemorySegment hT, long hTOffset, MemorySegment workspace,
      long workspaceOffset, Parallelism parallelism) {
    int g3 = 3 * hidden;
    long rows = (long) steps * batch;
    int state = batch * hidden;
    checks.check("x", x, xOffset, rows * input, false);
    checks.weights(wIh, wIhOffset, wHh, wHhOffset);
    checks.optional("b_ih", bIh, bIhOffset, g3, false);
    checks.optional("b_hh", bHh, bHhOffset, g3, false);
    checks.optional("h0", h0, h0Offset, state, false);
    checks.check("y", y, yOffset, rows * hidden, true);
    checks.optional("hT", hT, hTOffset, state, true);
    checks.check("workspace", workspace, workspaceOffset, workspaceFloats(), true);
    Checks.notNull(parallelism, "parallelism");

    long gates = gatesAt(workspaceOffset, 0);
    fillRows(workspace, gates, rows, g3, bIh, bIhOffset);
    Gemm.multiply(false, true, (int) rows, g3, input, 1f, x, xOffset, input, wIh, wIhOffset, input, 1f, workspace,
        gates, g3, parallelism);
    SegmentLoops.fill(workspace, 4 * zerosAt(workspaceOffset), hidden, 0f);
    // op(B) = W_hh^T, [H, 3H].
    PackedB recurrent = steps > 1 || h0 != null ? packWeight(true, hidden, g3, wHh, wHhOffset, hidden) : null;
    SequenceRows sequence = SequenceRows.forCurrentThread();
    sequence.set(this, false, workspace, workspaceOffset, y, yOffset, h0, h0Offset, recurrent);
    sequence.bHh = bHh;
    sequence.bHhOffset = bHhOffset;
    int parts = rowParts(parallelism, Checks.shareable(workspace) && Checks.shareable(y)
        && (h0 == null || Checks.shareable(h0)) && (bHh == null || Checks.shareable(bHh)), 3);
    try {
      parallelism.invoke(sequence, parts);
    } finally {
      sequence.clear();
    }
    if (hT != null) {
      SegmentLoops.copy(y, 4 * (yOffset + (rows - batch) * hidden), hT, 4 * hTOffset, state);
    }
  }

  /**
   * Step t for batch rows [from, to): their gh = h_{t-1} W_hh^T + b_hh into the scratch, then the
   * gates, the candidate and the new state.
   */
  @Override
  void forwardStep(int t, int from, int to, SequenceRows call) {
    MemorySegment workspace = call.workspace;
    long workspaceOffset = call.workspaceOffset;
    int g3 = 3 * hidden;
    int state = batch * hidden;
    MemorySegment hPrev = t == 0 ? call.h0 : call.y;
    long hPrevOffset = t == 0 ? call.h0Offset : call.yOffset + (long) (t - 1) * state;
    long gh = scratchAt(workspaceOffset);
    long gt = gatesAt(workspaceOffset, t);
    fillRows(workspace, gh + (long) from * g3, to - from, g3, call.bHh, call.bHhOffset);
    if (hPrev != null) {
      Gemm.multiplyPacked(false, to - from, 1f, hPrev, hPrevOffset + (long) from * hidden, hidden, call.recurrent, 1f,
          workspace, gh + (long) from * g3, g3, Parallelism.sequential());
    }
    for (int b = from; b < to; b++) {
      long row = 4 * (gt + (long) b * g3);
      long ghRow = 4 * (gh + (long) b * g3);
      long unit = (long) b * hidden;
      SegmentLoops.addInto(workspace, ghRow, workspace, row, 2 * hidden);
      Activation.SIGMOID.runInStep(2L * hidden, workspace, row, workspace, row);
      GruLoops.candidateInput(hidden, workspace, row, row + 8L * hidden, workspace, ghRow + 8L * hidden, workspace,
          4 * (savedGhnAt(workspaceOffset, t) + unit));
      Activation.TANH.runInStep(hidden, workspace, row + 8L * hidden, workspace, row + 8L * hidden);
      MemorySegment previous = hPrev == null ? workspace : hPrev;
      long previousAt = hPrev == null ? 4 * zerosAt(workspaceOffset) : 4 * (hPrevOffset + unit);
      GruLoops.hiddenState(hidden, workspace, row + 4L * hidden, row + 8L * hidden, previous, previousAt, call.y,
          4 * (call.yOffset + (long) t * state + unit));
    }
  }

  /**
   * Step t for batch rows [from, to): dy_t joins their dh; the gate gradients over the saved gates,
   * dgh and the direct path z dh; then dh_{t-1} = z dh + dgh_t W_hh replaces dh.
   */
  @Override
  void backwardStep(int t, int from, int to, SequenceRows call) {
    MemorySegment workspace = call.workspace;
    long workspaceOffset = call.workspaceOffset;
    int g3 = 3 * hidden;
    int state = batch * hidden;
    long dh = scratchAt(workspaceOffset);
    long direct = dh + state;
    long zeros = zerosAt(workspaceOffset);
    long gt = gatesAt(workspaceOffset, t);
    long dgh = recurrentGradientAt(workspaceOffset, t);
    MemorySegment hPrev = t == 0 ? call.h0 : call.y;
    long hPrevOffset = t == 0 ? call.h0Offset : call.yOffset + (long) (t - 1) * state;
    long first = (long) from * hidden;
    int units = (to - from) * hidden;
    if (call.dy != null) {
      SegmentLoops.addInto(call.dy, 4 * (call.dyOffset + (long) t * state + first), workspace, 4 * (dh + first), units);
    }
    for (int b = from; b < to; b++) {
      long row = 4 * (gt + (long) b * g3);
      long unit = (long) b * hidden;
      MemorySegment previous = hPrev == null ? workspace : hPrev;
      long previousAt = hPrev == null ? 4 * zeros : 4 * (hPrevOffset + unit);
      GruLoops.updateAndCandidate(hidden, workspace, row + 4L * hidden, row + 8L * hidden, previous, previousAt,
          workspace, 4 * (dh + unit), workspace, 4 * (direct + unit));
      long dghRow = 4 * (dgh + (long) b * g3);
      GruLoops.reset(hidden, workspace, row, row + 8L * hidden, workspace,
          4 * (savedGhnAt(workspaceOffset, t) + unit), workspace, dghRow + 8L * hidden);
      // The r and z parts of gh's gradient equal gi's.
      SegmentLoops.copy(workspace, row, workspace, dghRow, 2 * hidden);
    }
    // dh_{t-1} = dh z + dgh_t W_hh: [rows, 3H] x [3H, H] onto the direct path.
    Gemm.multiplyPacked(false, to - from, 1f, workspace, dgh + (long) from * g3, g3, call.recurrent, 1f, workspace,
        direct + first, hidden, Parallelism.sequential());
    SegmentLoops.copy(workspace, 4 * (direct + first), workspace, 4 * (dh + first), units);
  }

  /** A row of H zeros in the scratch (for a null h0), past gh's 3H floats per batch row. */
  private long zerosAt(long ws) {
    return scratchAt(ws) + 5L * batch * hidden - hidden;
  }

  /** Each of {@code rows} rows of {@code width} at {@code at} becomes the bias (or zeros). */
  private static void fillRows(MemorySegment ws, long at, long rows, int width, MemorySegment bias, long biasOffset) {
    if (bias == null) {
      for (long r = 0; r < rows; r++) {
        SegmentLoops.fill(ws, 4 * (at + r * width), width, 0f);
      }
      return;
    }
    for (long r = 0; r < rows; r++) {
      SegmentLoops.copy(bias, 4 * biasOffset, ws, 4 * (at + r * width), width);
    }
  }

  /** Backward through time from the forward's workspace, which it consumes. */
  public void backward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment h0, long h0Offset, MemorySegment y, long yOffset, MemorySegment dy, long dyOffset,
      MemorySegment dhT, long dhTOffset, MemorySegment dx, long dxOffset, MemorySegment dwIh, long dwIhOffset,
      MemorySegment dwHh, long dwHhOffset, MemorySegment dbIh, long dbIhOffset, MemorySegment dbHh, long dbHhOffset,
      MemorySegment dh0, long dh0Offset, MemorySegment workspace, long workspaceOffset, Parallelism parallelism) {
    int g3 = 3 * hidden;
    long rows = (long) steps * batch;
    int state = batch * hidden;
    checks.check("x", x, xOffset, rows * input, false);
    checks.weights(wIh, wIhOffset, wHh, wHhOffset);
    checks.optional("h0", h0, h0Offset, state, false);
    checks.check("y", y, yOffset, rows * hidden, false);
    checks.optional("dy", dy, dyOffset, rows * hidden, false);
    checks.optional("dhT", dhT, dhTOffset, state, false);
    checks.optional("dx", dx, dxOffset, rows * input, true);
    checks.check("dW_ih", dwIh, dwIhOffset, (long) g3 * input, true);
    checks.check("dW_hh", dwHh, dwHhOffset, (long) g3 * hidden, true);
    checks.optional("db_ih", dbIh, dbIhOffset, g3, true);
    checks.optional("db_hh", dbHh, dbHhOffset, g3, true);
    checks.optional("dh0", dh0, dh0Offset, state, true);
    checks.check("workspace", workspace, workspaceOffset, workspaceFloats(), true);
    Checks.notNull(parallelism, "parallelism");

    long dh = scratchAt(workspaceOffset);
    SegmentLoops.fill(workspace, 4 * zerosAt(workspaceOffset), hidden, 0f);
    if (dhT != null) {
      SegmentLoops.copy(dhT, 4 * dhTOffset, workspace, 4 * dh, state);
    } else {
      SegmentLoops.fill(workspace, 4 * dh, state, 0f);
    }
    // op(B) = W_hh, [3H, H].
    PackedB recurrent = packWeight(false, g3, hidden, wHh, wHhOffset, hidden);
    SequenceRows sequence = SequenceRows.forCurrentThread();
    sequence.set(this, true, workspace, workspaceOffset, y, yOffset, h0, h0Offset, recurrent);
    sequence.dy = dy;
    sequence.dyOffset = dyOffset;
    int parts = rowParts(parallelism, Checks.shareable(workspace) && Checks.shareable(y)
        && (h0 == null || Checks.shareable(h0)) && (dy == null || Checks.shareable(dy)), 3);
    try {
      parallelism.invoke(sequence, parts);
    } finally {
      sequence.clear();
    }
    long dgi = gatesAt(workspaceOffset, 0);
    long dghAll = recurrentGradientAt(workspaceOffset, 0);
    checks.mergedGradients(workspace, dgi, dghAll, x, xOffset, wIh, wIhOffset, h0, h0Offset, y, yOffset, dx, dxOffset,
        dwIh, dwIhOffset, dwHh, dwHhOffset, parallelism);
    if (dbIh != null) {
      Elementwise.biasBackward((int) rows, g3, 1, workspace, dgi, dbIh, dbIhOffset, parallelism);
    }
    if (dbHh != null) {
      Elementwise.biasBackward((int) rows, g3, 1, workspace, dghAll, dbHh, dbHhOffset, parallelism);
    }
    if (dh0 != null) {
      SegmentLoops.copy(workspace, 4 * dh, dh0, 4 * dh0Offset, state);
    }
  }
}
