package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A bidirectional GRU layer, as PyTorch's {@code nn.GRU(bidirectional=True)}: one {@link Gru}
 * over the sequence and one over the sequence reversed in time, their outputs concatenated per
 * step.
 *
 * <h2>Layout</h2>
 * As {@link BidirectionalLstm}'s, with 3H gates and no cell state. Every per-direction buffer
 * stacks the two directions, forward first:
 * <ul>
 *   <li>x {@code [T, B, I]}; y {@code [T, B, 2H]}, where {@code y[t, b, 0:H]} is the forward
 *       direction's h_t and {@code y[t, b, H:2H]} the reverse direction's h_t, the state after it
 *       has read x_{T-1} down to x_t;
 *   <li>{@code W_ih [2, 3H, I]}, {@code W_hh [2, 3H, H]}, {@code b_ih}, {@code b_hh [2, 3H]};
 *   <li>h0, hT (and their gradients) {@code [2, B, H]}; the reverse direction's "final" state is
 *       the one after step t = 0.
 * </ul>
 *
 * <h2>How</h2>
 * A reversed pass, then concatenation ({@link BidirectionalLayer}): x is copied reversed in time
 * into the workspace, both directions run as plain {@link Gru} calls, and the reverse direction's
 * output is copied back in time order into the second half of each y row. The backward splits dy
 * the same way and adds the reverse direction's dx, reversed, onto the forward direction's.
 *
 * <p>Null buffers mean what they mean for {@link Gru}. Every buffer is checked before anything is
 * written.
 */
public final class BidirectionalGru extends BidirectionalLayer {
  private final Gru direction;

  private BidirectionalGru(Gru direction) {
    super(direction);
    this.direction = direction;
  }

  /** A bidirectional GRU over T steps of a batch of B, input size I and hidden size H per direction. */
  public static BidirectionalGru of(int steps, int batch, int input, int hidden) {
    return new BidirectionalGru(Gru.of(steps, batch, input, hidden));
  }

  /** Forward over the sequence; the workspace is kept for {@link #backward}. */
  public void forward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment bIh, long bIhOffset, MemorySegment bHh, long bHhOffset, MemorySegment h0,
      long h0Offset, MemorySegment y, long yOffset, MemorySegment hT, long hTOffset, MemorySegment workspace,
      long workspaceOffset, Parallelism parallelism) {
    int state = batch * hidden;
    long gates = 3L * hidden;
    check("x", x, xOffset, sequence(input), false, "[T,B,I]");
    check("W_ih", wIh, wIhOffset, 2 * gates * input, false, "[2,3H,I]");
    check("W_hh", wHh, wHhOffset, 2 * gates * hidden, false, "[2,3H,H]");
    optional("b_ih", bIh, bIhOffset, 2 * gates, false, "[2,3H]");
    optional("b_hh", bHh, bHhOffset, 2 * gates, false, "[2,3H]");
    optional("h0", h0, h0Offset, 2L * state, false, "[2,B,H]");
    check("y", y, yOffset, sequence(2 * hidden), true, "[T,B,2H]");
    optional("hT", hT, hTOffset, 2L * state, true, "[2,B,H]");
    check("workspace", workspace, workspaceOffset, workspaceFloats(), true, "(see workspaceFloats())");
    Checks.notNull(parallelism, "parallelism");

    long ws = workspaceOffset;
    reverseInput(x, xOffset, workspace, ws);
    for (int d = 0; d < 2; d++) {
      direction.forward(d == 0 ? x : workspace, d == 0 ? xOffset : reversedXAt(ws), wIh, wIhOffset + d * gates * input,
          wHh, wHhOffset + d * gates * hidden, bIh, bIhOffset + d * gates, bHh, bHhOffset + d * gates, h0,
          h0Offset + d * state, workspace, outputAt(ws, d), hT, hTOffset + d * state, workspace,
          directionWorkspaceAt(ws, d), parallelism);
    }
    interleaveOutputs(workspace, ws, y, yOffset);
  }

  /**
   * Backward through time from the forward's workspace, which it consumes. dy {@code [T, B, 2H]}
   * may be null, as may dhT, dx, the bias gradients and dh0. h0 is the forward's.
   */
  public void backward(MemorySegment x, long xOffset, MemorySegment wIh, long wIhOffset, MemorySegment wHh,
      long wHhOffset, MemorySegment h0, long h0Offset, MemorySegment dy, long dyOffset, MemorySegment dhT,
      long dhTOffset, MemorySegment dx, long dxOffset, MemorySegment dwIh, long dwIhOffset, MemorySegment dwHh,
      long dwHhOffset, MemorySegment dbIh, long dbIhOffset, MemorySegment dbHh, long dbHhOffset, MemorySegment dh0,
      long dh0Offset, MemorySegment workspace, long workspaceOffset, Parallelism parallelism) {
    int state = batch * hidden;
    long gates = 3L * hidden;
    check("x", x, xOffset, sequence(input), false, "[T,B,I]");
    check("W_ih", wIh, wIhOffset, 2 * gates * input, false, "[2,3H,I]");
    check("W_hh", wHh, wHhOffset, 2 * gates * hidden, false, "[2,3H,H]");
    optional("h0", h0, h0Offset, 2L * state, false, "[2,B,H]");
    optional("dy", dy, dyOffset, sequence(2 * hidden), false, "[T,B,2H]");
    optional("dhT", dhT, dhTOffset, 2L * state, false, "[2,B,H]");
    optional("dx", dx, dxOffset, sequence(input), true, "[T,B,I]");
    check("dW_ih", dwIh, dwIhOffset, 2 * gates * input, true, "[2,3H,I]");
    check("dW_hh", dwHh, dwHhOffset, 2 * gates * hidden, true, "[2,3H,H]");
    optional("db_ih", dbIh, dbIhOffset, 2 * gates, true, "[2,3H]");
    optional("db_hh", dbHh, dbHhOffset, 2 * gates, true, "[2,3H]");
    optional("dh0", dh0, dh0Offset, 2L * state, true, "[2,B,H]");
    check("workspace", workspace, workspaceOffset, workspaceFloats(), true, "(see workspaceFloats())");
    Checks.notNull(parallelism, "parallelism");

    long ws = workspaceOffset;
    if (dy != null) {
      splitOutputGradient(dy, dyOffset, workspace, ws);
    }
    for (int d = 0; d < 2; d++) {
      MemorySegment directionDx = d == 0 ? dx : dx == null ? null : workspace;
      long directionDxOffset = d == 0 ? dxOffset : reversedInputGradientAt(ws);
      direction.backward(d == 0 ? x : workspace, d == 0 ? xOffset : reversedXAt(ws), wIh, wIhOffset + d * gates * input,
          wHh, wHhOffset + d * gates * hidden, h0, h0Offset + d * state, workspace, outputAt(ws, d),
          dy == null ? null : workspace, outputGradientAt(ws, d), dhT, dhTOffset + d * state, directionDx,
          directionDxOffset, dwIh, dwIhOffset + d * gates * input, dwHh, dwHhOffset + d * gates * hidden, dbIh,
          dbIhOffset + d * gates, dbHh, dbHhOffset + d * gates, dh0, dh0Offset + d * state, workspace,
          directionWorkspaceAt(ws, d), parallelism);
    }
    if (dx != null) {
      // dx[t] += the reverse direction's dx, stored in reversed time.
      addReverseInputGradient(workspace, ws, dx, dxOffset);
    }
  }

  /** The layer one direction runs (both have the same dimensions). */
  public Gru direction() {
    return direction;
  }

  @Override
  public String toString() {
    return "Bidirectional" + direction;
  }
}
