package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A bidirectional LSTM layer, as PyTorch's {@code bidirectional=True}: one {@link Lstm} over the
 * sequence and one over the sequence reversed in time, their outputs concatenated per step.
 *
 * <h2>Layout</h2>
 * Every per-direction buffer stacks the two directions, forward first (PyTorch's
 * {@code [num_directions, ...]} order):
 * <ul>
 *   <li>x {@code [T, B, I]}; y {@code [T, B, 2H]}, where {@code y[t, b, 0:H]} is the forward
 *       direction's h_t and {@code y[t, b, H:2H]} the reverse direction's h_t, the state after it
 *       has read x_{T-1} down to x_t;
 *   <li>{@code W_ih [2, 4H, I]}, {@code W_hh [2, 4H, H]}, {@code b_ih}, {@code b_hh [2, 4H]};
 *   <li>h0, c0, hT, cT (and their gradients) {@code [2, B, H]}; the reverse direction's "final"
 *       state is the one after step t = 0.
 * </ul>
 *
 * <h2>How</h2>
 * A reversed pass, then concatenation: x is copied reversed in time into the workspace, both
 * directions run as plain {@link Lstm} calls, and the reverse direction's output is copied back in
 * time order into the second half of each y row. The backward splits dy the same way and adds the
 * reverse direction's dx, reversed, onto the forward direction's. The copies move
 * {@code T B (2I + 4H)} floats per forward and backward, against {@code 16 T B H (I + H)} flops.
 *
 * <p>Null buffers mean what they mean for {@link Lstm}. Every buffer is checked before anything is
 * written.
 */
public final class BidirectionalLstm extends BidirectionalLayer {
  private final Lstm direction;

  private BidirectionalLstm(Lstm direction) {
    super(direction);
    this.direction = direction;
  }

  /** A bidirectional LSTM over T steps of a batch of B, input size I and hidden size H per direction. */
  public static BidirectionalLstm of(int steps, int batch, int input, int hidden) {
    return new BidirectionalLstm(Lstm.of(steps, batch, input, hidden));
  }

  /** Forward over the sequence; the workspace is kept for {@link #backward}. */
  public void forward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment bIh, long bIhOffset, MemorySegment bHh, long bHhOffset, MemorySegment h0,
      long h0Offset, MemorySegment c0, long c0Offset, MemorySegment y, long yOffset, MemorySegment hT, long hTOffset,
      MemorySegment cT, long cTOffset, MemorySegment workspace, long workspaceOffset, Parallelism parallelism) {
    int state = batch * hidden;
    check("x", x, xOffset, sequence(input), false, "[T,B,I]");
    check("W_ih", wIh, wIhOffset, 2L * 4 * hidden * input, false, "[2,4H,I]");
    check("W_hh", wHh, wHhOffset, 2L * 4 * hidden * hidden, false, "[2,4H,H]");
    optional("b_ih", bIh, bIhOffset, 2L * 4 * hidden, false, "[2,4H]");
    optional("b_hh", bHh, bHhOffset, 2L * 4 * hidden, false, "[2,4H]");
    optional("h0", h0, h0Offset, 2L * state, false, "[2,B,H]");
    optional("c0", c0, c0Offset, 2L * state, false, "[2,B,H]");
    check("y", y, yOffset, sequence(2 * hidden), true, "[T,B,2H]");
    optional("hT", hT, hTOffset, 2L * state, true, "[2,B,H]");
    optional("cT", cT, cTOffset, 2L * state, true, "[2,B,H]");
    check("workspace", workspace, workspaceOffset, workspaceFloats(), true, "(see workspaceFloats())");
    Checks.notNull(parallelism, "parallelism");

    long ws = workspaceOffset;
    reverseInput(x, xOffset, workspace, ws);
    for (int d = 0; d < 2; d++) {
      direction.forward(d == 0 ? x : workspace, d == 0 ? xOffset : reversedXAt(ws), wIh, wIhOffset + d * 4L * hidden
          * input, wHh, wHhOffset + d * 4L * hidden * hidden, bIh, bIhOffset + d * 4L * hidden, bHh, bHhOffset
          + d * 4L * hidden, h0, h0Offset + d * state, c0, c0Offset + d * state, workspace, outputAt(ws, d), hT,
          hTOffset + d * state, cT, cTOffset + d * state, workspace, directionWorkspaceAt(ws, d),
          parallelism);
    }
    // y[t] = [forward h_t, reverse h_t], the reverse output being stored in reversed time.
    interleaveOutputs(workspace, ws, y, yOffset);
  }

  /**
   * Backward through time from the forward's workspace, which it consumes. dy {@code [T, B, 2H]}
   * may be null, as may dhT and dcT, dx, the bias gradients, dh0 and dc0. h0 is the forward's.
   */
  public void backward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment h0, long h0Offset, MemorySegment dy, long dyOffset, MemorySegment dhT,
      long dhTOffset, MemorySegment dcT, long dcTOffset, MemorySegment dx, long dxOffset, MemorySegment dwIh,
      long dwIhOffset, MemorySegment dwHh, long dwHhOffset, MemorySegment dbIh, long dbIhOffset, MemorySegment dbHh,
      long dbHhOffset, MemorySegment dh0, long dh0Offset, MemorySegment dc0, long dc0Offset, MemorySegment workspace,
      long workspaceOffset, Parallelism parallelism) {
    int state = batch * hidden;
    check("x", x, xOffset, sequence(input), false, "[T,B,I]");
    check("W_ih", wIh, wIhOffset, 2L * 4 * hidden * input, false, "[2,4H,I]");
    check("W_hh", wHh, wHhOffset, 2L * 4 * hidden * hidden, false, "[2,4H,H]");
    optional("h0", h0, h0Offset, 2L * state, false, "[2,B,H]");
    optional("dy", dy, dyOffset, sequence(2 * hidden), false, "[T,B,2H]");
    optional("dhT", dhT, dhTOffset, 2L * state, false, "[2,B,H]");
    optional("dcT", dcT, dcTOffset, 2L * state, false, "[2,B,H]");
    optional("dx", dx, dxOffset, sequence(input), true, "[T,B,I]");
    check("dW_ih", dwIh, dwIhOffset, 2L * 4 * hidden * input, true, "[2,4H,I]");
    check("dW_hh", dwHh, dwHhOffset, 2L * 4 * hidden * hidden, true, "[2,4H,H]");
    optional("db_ih", dbIh, dbIhOffset, 2L * 4 * hidden, true, "[2,4H]");
    optional("db_hh", dbHh, dbHhOffset, 2L * 4 * hidden, true, "[2,4H]");
    optional("dh0", dh0, dh0Offset, 2L * state, true, "[2,B,H]");
    optional("dc0", dc0, dc0Offset, 2L * state, true, "[2,B,H]");
    check("workspace", workspace, workspaceOffset, workspaceFloats(), true, "(see workspaceFloats())");
    Checks.notNull(parallelism, "parallelism");

    long ws = workspaceOffset;
    if (dy != null) {
      splitOutputGradient(dy, dyOffset, workspace, ws);
    }
    for (int d = 0; d < 2; d++) {
      MemorySegment directionDx = d == 0 ? dx : dx == null ? null : workspace;
      long directionDxOffset = d == 0 ? dxOffset : reversedInputGradientAt(ws);
      direction.backward(d == 0 ? x : workspace, d == 0 ? xOffset : reversedXAt(ws), wIh, wIhOffset + d * 4L * hidden
          * input, wHh, wHhOffset + d * 4L * hidden * hidden, h0, h0Offset + d * state, workspace, outputAt(ws, d),
          dy == null ? null : workspace, outputGradientAt(ws, d), dhT, dhTOffset + d * state, dcT, dcTOffset
          + d * state, directionDx, directionDxOffset, dwIh, dwIhOffset + d * 4L * hidden * input, dwHh, dwHhOffset
          + d * 4L * hidden * hidden, dbIh, dbIhOffset + d * 4L * hidden, dbHh, dbHhOffset + d * 4L * hidden, dh0,
          dh0Offset + d * state, dc0, dc0Offset + d * state, workspace, directionWorkspaceAt(ws, d),
          parallelism);
    }
    if (dx != null) {
      // dx[t] += the reverse direction's dx, stored in reversed time.
      addReverseInputGradient(workspace, ws, dx, dxOffset);
    }
  }

  /** The layer one direction runs (both have the same dimensions). */
  public Lstm direction() {
    return direction;
  }

  @Override
  public String toString() {
    return "Bidirectional" + direction;
  }
}
