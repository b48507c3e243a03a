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
    long gh = scratchAt(workspaceOffset);
    SegmentLoops.fill(workspace, 4 * zerosAt(workspaceOffset), hidden, 0f);
    // op(B) = W_hh^T, [H, 3H].
    PackedB recurrent = steps > 1 || h0 != null ? packWeight(true, hidden, g3, wHh, wHhOffset, hidden) : null;
    StepRows pass = StepRows.forCurrentThread();
    pass.set(this, false, workspace, workspaceOffset, y, yOffset, h0, h0Offset);
    int parts = rowParts(parallelism, Checks.shareable(workspace) && Checks.shareable(y)
        && (h0 == null || Checks.shareable(h0)), 3);
    try {
      for (int t = 0; t < steps; t++) {
        MemorySegment hPrev = t == 0 ? h0 : y;
        long hPrevOffset = t == 0 ? h0Offset : yOffset + (long) (t - 1) * state;
        fillRows(workspace, gh, batch, g3, bHh, bHhOffset);
        if (hPrev != null) {
          Gemm.multiplyPacked(false, batch, 1f, hPrev, hPrevOffset, hidden, recurrent, 1f, workspace, gh, g3,
              parallelism);
        }
        pass.step = t;
        parallelism.invoke(pass, parts);
      }
    } finally {
      pass.clear();
    }
    if (hT != null) {
      SegmentLoops.copy(y, 4 * (yOffset + (rows - batch) * hidden), hT, 4 * hTOffset, state);
    }
  }

  /** Step t's gates, candidate and new state for batch rows [from, to). */
  @Override
  void forwardRows(int t, int from, int to, StepRows call) {
    MemorySegment workspace = call.workspace;
    long workspaceOffset = call.workspaceOffset;
    int g3 = 3 * hidden;
    int state = batch * hidden;
    MemorySegment hPrev = t == 0 ? call.h0 : call.y;
    long hPrevOffset = t == 0 ? call.h0Offset : call.yOffset + (long) (t - 1) * state;
    long gh = scratchAt(workspaceOffset);
    long gt = gatesAt(workspaceOffset, t);
    for (int b = from; b < to; b++) {
      long row = 4 * (gt + (long) b * g3);
      long ghRow = 4 * (gh + (long) b * g3);
      long unit = (long) b * hidden;
      SegmentLoops.addInto(workspace, ghRow, workspace, row, 2 * hidden);
      Activation.SIGMOID.run(2L * hidden, workspace, row, workspace, row);
      GruLoops.candidateInput(hidden, workspace, row, row + 8L * hidden, workspace, ghRow + 8L * hidden, workspace,
          4 * (savedGhnAt(workspaceOffset, t) + unit));
      Activation.TANH.run(hidden, workspace, row + 8L * hidden, workspace, row + 8L * hidden);
      MemorySegment previous = hPrev == null ? workspace : hPrev;
      long previousAt = hPrev == null ? 4 * zerosAt(workspaceOffset) : 4 * (hPrevOffset + unit);
      GruLoops.hiddenState(hidden, workspace, row + 4L * hidden, row + 8L * hidden, previous, previousAt, call.y,
          4 * (call.yOffset + (long) t * state + unit));
    }
  }

  /** Step t's gate gradients for batch rows [from, to): dgates over the saved gates, dgh, the direct path. */
  @Override
  void backwardRows(int t, int from, int to, StepRows call) {
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
    long direct = dh + state;
    long zeros = zerosAt(workspaceOffset);
    SegmentLoops.fill(workspace, 4 * zeros, hidden, 0f);
    if (dhT != null) {
      SegmentLoops.copy(dhT, 4 * dhTOffset, workspace, 4 * dh, state);
    } else {
      SegmentLoops.fill(workspace, 4 * dh, state, 0f);
    }
    // op(B) = W_hh, [3H, H].
    PackedB recurrent = packWeight(false, g3, hidden, wHh, wHhOffset, hidden);
    StepRows pass = StepRows.forCurrentThread();
    pass.set(this, true, workspace, workspaceOffset, y, yOffset, h0, h0Offset);
    int parts = rowParts(parallelism, Checks.shareable(workspace) && Checks.shareable(y)
        && (h0 == null || Checks.shareable(h0)), 3);
    try {
      for (int t = steps - 1; t >= 0; t--) {
        if (dy != null) {
          SegmentLoops.addInto(dy, 4 * (dyOffset + (long) t * state), workspace, 4 * dh, state);
        }
        pass.step = t;
        parallelism.invoke(pass, parts);
        // dh_{t-1} = dh z + dgh_t W_hh: [B, 3H] x [3H, H] onto the direct path.
        Gemm.multiplyPacked(false, batch, 1f, workspace, recurrentGradientAt(workspaceOffset, t), g3, recurrent, 1f,
            workspace, direct, hidden, parallelism);
        SegmentLoops.copy(workspace, 4 * direct, workspace, 4 * dh, state);
      }
    } finally {
      pass.clear();
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
