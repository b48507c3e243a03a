package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A single-layer LSTM over a whole sequence, forward and backward through time, with PyTorch's
 * conventions so that its weights import as they are.
 *
 * <h2>Layout</h2>
 * <ul>
 *   <li>x {@code [T, B, I]} (time-major), y {@code [T, B, H]} (h_t for every step),
 *       h0, c0, hT, cT {@code [B, H]}; all row-major float32.
 *   <li>{@code W_ih [4H, I]}, {@code W_hh [4H, H]}, {@code b_ih [4H]}, {@code b_hh [4H]}, with the
 *       gate order i, f, g, o.
 * </ul>
 * <pre>
 *   [i f g o] = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
 *   i, f, o = sigmoid(.), g = tanh(.)
 *   c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
 * </pre>
 *
 * <h2>How</h2>
 * The input projection of all T steps is one GEMM ({@code [T B, I] x [I, 4H]}) into the
 * workspace, on top of the summed biases. Each step then adds one GEMM of {@code h_{t-1} W_hh^T}
 * and runs the activations and one fused pointwise pass. The workspace keeps what the backward
 * needs: the activated gates {@code [T, B, 4H]}, then c {@code [T, B, H]}, then a copy of c0
 * {@code [B, H]} and two {@code [B, H]} rows of backward scratch (see {@link #workspaceFloats()}).
 * The backward runs one fused pass and one GEMM ({@code dgates_t W_hh}) per step, writing the
 * pre-activation gradients over the saved gates, then gets every weight gradient from GEMMs
 * merged across time: {@code dW_ih = dG^T X}, {@code dW_hh = dG^T [h0; y_0..y_{T-2}]},
 * {@code dx = dG W_ih}. With several threads, each takes a range of batch rows through all T steps,
 * its share of every step GEMM included, so the threads meet once per sequence rather than twice
 * per step.
 *
 * <h2>State, chunks and single steps</h2>
 * h0 and c0 may be null (zeros), and hT, cT may be null (not wanted). For truncated BPTT, pass
 * each chunk's hT and cT as the next chunk's h0 and c0, and the backward's dh0 and dc0 as the
 * previous chunk's dhT and dcT. An LSTM of T = 1 is the single-step cell for inference.
 *
 * <p>Stacking layers: the y of one layer is the x of the next. Every call checks every buffer
 * before anything is written; gradients are overwritten, not accumulated.
 */
public final class Lstm extends RecurrentLayer {
  private Lstm(int steps, int batch, int input, int hidden) {
    super(steps, batch, input, hidden, 4);
  }

  /** An LSTM over T steps of a batch of B, input size I and hidden size H, all at least 1. */
  public static Lstm of(int steps, int batch, int input, int hidden) {
    return new Lstm(steps, batch, input, hidden);
  }

  /** Floats of workspace a forward and its backward need: {@code T B 5H + 3 B H}. */
  @Override
  public long workspaceFloats() {
    return (long) steps * batch * 5 * hidden + 3L * batch * hidden;
  }

  private long gatesAt(long wsOffset, int t) {
    return wsOffset + (long) t * batch * 4 * hidden;
  }

  private long cellAt(long wsOffset, int t) {
    return wsOffset + (long) steps * batch * 4 * hidden + (long) t * batch * hidden;
  }

  /** c0's copy; cellAt(-1). */
  private long initialCellAt(long wsOffset) {
    return cellAt(wsOffset, steps);
  }

  private long scratchAt(long wsOffset, int which) {
    return initialCellAt(wsOffset) + (long) (1 + which) * batch * hidden;
  }

  /**
   * Forward over the sequence. Biases may be null (no bias), h0 and c0 null (zeros), hT and cT
   * null. The workspace ({@link #workspaceFloats()}) is kept for {@link #backward}.
   */
  public void forward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment bIh, long bIhOffset, MemorySegment bHh, long bHhOffset, MemorySegment h0,
      long h0Offset, MemorySegment c0, long c0Offset, MemorySegment y, long yOffset, MemorySegment hT, long hTOffset,
      MemorySegment cT, long cTOffset, MemorySegment workspace, long workspaceOffset, Parallelism parallelism) {
    int g4 = 4 * hidden;
    long rows = (long) steps * batch;
    checks.check("x", x, xOffset, rows * input, false);
    checks.weights(wIh, wIhOffset, wHh, wHhOffset);
    checks.optional("b_ih", bIh, bIhOffset, g4, false);
    checks.optional("b_hh", bHh, bHhOffset, g4, false);
    checks.optional("h0", h0, h0Offset, (long) batch * hidden, false);
    checks.optional("c0", c0, c0Offset, (long) batch * hidden, false);
    checks.check("y", y, yOffset, rows * hidden, true);
    checks.optional("hT", hT, hTOffset, (long) batch * hidden, true);
    checks.optional("cT", cT, cTOffset, (long) batch * hidden, true);
    checks.check("workspace", workspace, workspaceOffset, workspaceFloats(), true);
    Checks.notNull(parallelism, "parallelism");

    long gates = gatesAt(workspaceOffset, 0);
    // Every gate row starts as b_ih + b_hh; the input GEMM adds onto it.
    SegmentLoops.fill(workspace, 4 * gates, g4, 0f);
    if (bIh != null) {
      SegmentLoops.addInto(bIh, 4 * bIhOffset, workspace, 4 * gates, g4);
    }
    if (bHh != null) {
      SegmentLoops.addInto(bHh, 4 * bHhOffset, workspace, 4 * gates, g4);
    }
    for (long r = 1; r < rows; r++) {
      SegmentLoops.copy(workspace, 4 * gates, workspace, 4 * (gates + r * g4), g4);
    }
    Gemm.multiply(false, true, (int) rows, g4, input, 1f, x, xOffset, input, wIh, wIhOffset, input, 1f, workspace,
        gates, g4, parallelism);
    long initialCell = initialCellAt(workspaceOffset);
    if (c0 != null) {
      SegmentLoops.copy(c0, 4 * c0Offset, workspace, 4 * initialCell, batch * hidden);
    } else {
      SegmentLoops.fill(workspace, 4 * initialCell, batch * hidden, 0f);
    }
    // op(B) = W_hh^T, [H, 4H].
    PackedB recurrent = steps > 1 || h0 != null ? packWeight(true, hidden, g4, wHh, wHhOffset, hidden) : null;
    SequenceRows sequence = SequenceRows.forCurrentThread();
    sequence.set(this, false, workspace, workspaceOffset, y, yOffset, h0, h0Offset, recurrent);
    int parts = rowParts(parallelism, Checks.shareable(workspace) && Checks.shareable(y)
        && (h0 == null || Checks.shareable(h0)), 4);
    try {
      parallelism.invoke(sequence, parts);
    } finally {
      sequence.clear();
    }
    int state = batch * hidden;
    if (hT != null) {
      SegmentLoops.copy(y, 4 * (yOffset + (rows - batch) * hidden), hT, 4 * hTOffset, state);
    }
    if (cT != null) {
      SegmentLoops.copy(workspace, 4 * cellAt(workspaceOffset, steps - 1), cT, 4 * cTOffset, state);
    }
  }

  /**
   * Backward through time from the forward's workspace (which it consumes: the saved gates are
   * overwritten by their gradients, the saved cell states by their tanh). dy may be null (only dhT, dcT flow in), as may dhT and dcT
   * (zero), dx (a first layer), dbIh and dbHh (no bias), and dh0 and dc0. h0 is the forward's (or
   * null for zeros), and y its output.
   */
  public void backward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment h0, long h0Offset, MemorySegment y, long yOffset, MemorySegment dy, long dyOffset,
      MemorySegment dhT, long dhTOffset, MemorySegment dcT, long dcTOffset, MemorySegment dx, long dxOffset,
      MemorySegment dwIh, long dwIhOffset, MemorySegment dwHh, long dwHhOffset, MemorySegment dbIh, long dbIhOffset,
      MemorySegment dbHh, long dbHhOffset, MemorySegment dh0, long dh0Offset, MemorySegment dc0, long dc0Offset,
      MemorySegment workspace, long workspaceOffset, Parallelism parallelism) {
    int g4 = 4 * hidden;
    long rows = (long) steps * batch;
    int state = batch * hidden;
    checks.check("x", x, xOffset, rows * input, false);
    checks.weights(wIh, wIhOffset, wHh, wHhOffset);
    checks.optional("h0", h0, h0Offset, state, false);
    checks.check("y", y, yOffset, rows * hidden, false);
    checks.optional("dy", dy, dyOffset, rows * hidden, false);
    checks.optional("dhT", dhT, dhTOffset, state, false);
    checks.optional("dcT", dcT, dcTOffset, state, false);
    checks.optional("dx", dx, dxOffset, rows * input, true);
    checks.check("dW_ih", dwIh, dwIhOffset, (long) g4 * input, true);
    checks.check("dW_hh", dwHh, dwHhOffset, (long) g4 * hidden, true);
    checks.optional("db_ih", dbIh, dbIhOffset, g4, true);
    checks.optional("db_hh", dbHh, dbHhOffset, g4, true);
    checks.optional("dh0", dh0, dh0Offset, state, true);
    checks.optional("dc0", dc0, dc0Offset, state, true);
    checks.check("workspace", workspace, workspaceOffset, workspaceFloats(), true);
    Checks.notNull(parallelism, "parallelism");

    long dh = scratchAt(workspaceOffset, 0);
    long dc = scratchAt(workspaceOffset, 1);
    startFrom(dhT, dhTOffset, workspace, dh, state);
    startFrom(dcT, dcTOffset, workspace, dc, state);
    // op(B) = W_hh, [4H, H].
    PackedB recurrent = packWeight(false, g4, hidden, wHh, wHhOffset, hidden);
    SequenceRows sequence = SequenceRows.forCurrentThread();
    sequence.set(this, true, workspace, workspaceOffset, null, 0, null, 0, recurrent);
    sequence.dy = dy;
    sequence.dyOffset = dyOffset;
    int parts = rowParts(parallelism, Checks.shareable(workspace) && (dy == null || Checks.shareable(dy)), 4);
    try {
      parallelism.invoke(sequence, parts);
    } finally {
      sequence.clear();
    }
    long dGates = gatesAt(workspaceOffset, 0);
    checks.mergedGradients(workspace, dGates, dGates, x, xOffset, wIh, wIhOffset, h0, h0Offset, y, yOffset, dx,
        dxOffset, dwIh, dwIhOffset, dwHh, dwHhOffset, parallelism);
    if (dbIh != null || dbHh != null) {
      MemorySegment target = dbIh != null ? dbIh : dbHh;
      long targetOffset = dbIh != null ? dbIhOffset : dbHhOffset;
      Elementwise.biasBackward((int) rows, g4, 1, workspace, dGates, target, targetOffset, parallelism);
      if (dbIh != null && dbHh != null) {
        SegmentLoops.copy(dbIh, 4 * dbIhOffset, dbHh, 4 * dbHhOffset, g4);
      }
    }
    if (dh0 != null) {
      SegmentLoops.copy(workspace, 4 * dh, dh0, 4 * dh0Offset, state);
    }
    if (dc0 != null) {
      SegmentLoops.copy(workspace, 4 * dc, dc0, 4 * dc0Offset, state);
    }
  }

  /**
   * Step t for batch rows [from, to): their gates get h_{t-1} W_hh^T, then the activations in place
   * and the cell update, c_t into the workspace and h_t into y.
   */
  @Override
  void forwardStep(int t, int from, int to, SequenceRows call) {
    MemorySegment workspace = call.workspace;
    long workspaceOffset = call.workspaceOffset;
    MemorySegment y = call.y;
    long yOffset = call.yOffset;
    long gt = gatesAt(workspaceOffset, t);
    int state = batch * hidden;
    MemorySegment hPrev = t == 0 ? call.h0 : y;
    long hPrevOffset = t == 0 ? call.h0Offset : yOffset + (long) (t - 1) * state;
    if (hPrev != null) {
      Gemm.multiplyPacked(false, to - from, 1f, hPrev, hPrevOffset + (long) from * hidden, hidden, call.recurrent, 1f,
          workspace, gt + (long) from * 4 * hidden, 4 * hidden, Parallelism.sequential());
    }
    long cPrev = t == 0 ? initialCellAt(workspaceOffset) : cellAt(workspaceOffset, t - 1);
    int g4 = 4 * hidden;
    for (int b = from; b < to; b++) {
      long row = 4 * (gt + (long) b * g4);
      Activation.SIGMOID.runInStep(2L * hidden, workspace, row, workspace, row);
      Activation.TANH.runInStep(hidden, workspace, row + 8L * hidden, workspace, row + 8L * hidden);
      Activation.SIGMOID.runInStep(hidden, workspace, row + 12L * hidden, workspace, row + 12L * hidden);
      long unit = (long) b * hidden;
      LstmLoops.cellForward(hidden, workspace, row, workspace, 4 * (cPrev + unit), workspace,
          4 * (cellAt(workspaceOffset, t) + unit), y, 4 * (yOffset + (long) t * batch * hidden + unit));
    }
  }

  /**
   * Step t for batch rows [from, to): dy_t joins their dh, the gate gradients overwrite the saved
   * gates (carrying dc), and dh_{t-1} = dgates_t W_hh replaces dh.
   */
  @Override
  void backwardStep(int t, int from, int to, SequenceRows call) {
    MemorySegment workspace = call.workspace;
    long workspaceOffset = call.workspaceOffset;
    long gt = gatesAt(workspaceOffset, t);
    long cPrev = t == 0 ? initialCellAt(workspaceOffset) : cellAt(workspaceOffset, t - 1);
    long dh = scratchAt(workspaceOffset, 0);
    long dc = scratchAt(workspaceOffset, 1);
    int g4 = 4 * hidden;
    long first = (long) from * hidden;
    if (call.dy != null) {
      SegmentLoops.addInto(call.dy, 4 * (call.dyOffset + (long) t * batch * hidden + first), workspace,
          4 * (dh + first), (to - from) * hidden);
    }
    for (int b = from; b < to; b++) {
      long unit = (long) b * hidden;
      LstmLoops.cellBackward(hidden, workspace, 4 * (gt + (long) b * g4), workspace, 4 * (cPrev + unit), workspace,
          4 * (cellAt(workspaceOffset, t) + unit), workspace, 4 * (dh + unit), workspace, 4 * (dc + unit));
    }
    // dh_{t-1} = dgates_t W_hh: [rows, 4H] x [4H, H].
    Gemm.multiplyPacked(false, to - from, 1f, workspace, gt + (long) from * g4, g4, call.recurrent, 0f, workspace,
        dh + first, hidden, Parallelism.sequential());
  }

  private static void startFrom(MemorySegment source, long sourceOffset, MemorySegment workspace, long at, int n) {
    if (source != null) {
      SegmentLoops.copy(source, 4 * sourceOffset, workspace, 4 * at, n);
    } else {
      SegmentLoops.fill(workspace, 4 * at, n, 0f);
    }
  }
}
