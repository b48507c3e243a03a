package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * What the bidirectional layers ({@link BidirectionalLstm}, {@link BidirectionalGru}) share: the
 * dimensions, the workspace layout around the two directions' own workspaces, and the data
 * movement. The reverse direction runs on x reversed in time, so its outputs come out in reversed
 * time too; the layer reverses x into the workspace, interleaves the two directions' {@code [T, B, H]}
 * outputs into one {@code [T, B, 2H]}, splits dy the same way and adds the reverse direction's dx
 * back in time order. All offsets are in floats.
 *
 * <p>Workspace: both directions' workspaces, then x reversed {@code [T, B, I]}, each direction's
 * output {@code [T, B, H]}, each direction's dy {@code [T, B, H]} and the reverse direction's dx
 * {@code [T, B, I]}: {@code T B (2I + 4H)} floats beyond the directions'.
 */
abstract sealed class BidirectionalLayer permits BidirectionalLstm, BidirectionalGru {
  final int steps;
  final int batch;
  final int input;
  final int hidden;
  private final long directionFloats;

  BidirectionalLayer(RecurrentLayer direction) {
    this.steps = direction.steps();
    this.batch = direction.batch();
    this.input = direction.input();
    this.hidden = direction.hidden();
    this.directionFloats = direction.workspaceFloats();
  }

  /**
   * Floats of workspace a forward and its backward need: both directions' workspaces, then x
   * reversed, each direction's output, each direction's dy and the reverse direction's dx.
   */
  public long workspaceFloats() {
    return 2 * directionFloats + (long) steps * batch * (2L * input + 4L * hidden);
  }

  final long sequence(int floatsPerRow) {
    return (long) steps * batch * floatsPerRow;
  }

  /** Direction d's own workspace. */
  final long directionWorkspaceAt(long ws, int d) {
    return ws + d * directionFloats;
  }

  final long reversedXAt(long ws) {
    return ws + 2 * directionFloats;
  }

  /** Direction d's own output [T, B, H] (the reverse one in reversed time order). */
  final long outputAt(long ws, int d) {
    return reversedXAt(ws) + sequence(input) + d * sequence(hidden);
  }

  /** Direction d's dy [T, B, H] (the reverse one in reversed time order). */
  final long outputGradientAt(long ws, int d) {
    return outputAt(ws, 2) + d * sequence(hidden);
  }

  final long reversedInputGradientAt(long ws) {
    return outputGradientAt(ws, 2);
  }

  /** x reversed in time into the workspace, for the reverse direction. */
  final void reverseInput(MemorySegment x, long xOffset, MemorySegment workspace, long ws) {
    long stepFloats = (long) batch * input;
    long dst = reversedXAt(ws);
    for (int t = 0; t < steps; t++) {
      SegmentLoops.copy(x, 4 * (xOffset + (steps - 1 - t) * stepFloats), workspace, 4 * (dst + t * stepFloats),
          (int) stepFloats);
    }
  }

  /** {@code y[t, b] = [forward[t, b], reverse[T-1-t, b]]}, from the two outputs in the workspace. */
  final void interleaveOutputs(MemorySegment workspace, long ws, MemorySegment y, long yOffset) {
    exchangeHalves(y, yOffset, workspace, outputAt(ws, 0), outputAt(ws, 1), true);
  }

  /** The inverse of {@link #interleaveOutputs} for dy: its halves into the directions' dy. */
  final void splitOutputGradient(MemorySegment dy, long dyOffset, MemorySegment workspace, long ws) {
    exchangeHalves(dy, dyOffset, workspace, outputGradientAt(ws, 0), outputGradientAt(ws, 1), false);
  }

  /**
   * Moves every {@code [T, B, 2H]} row's halves to or from two {@code [T, B, H]} buffers in the
   * workspace, the second one in reversed time: into the rows when {@code intoRows}, out of them
   * otherwise.
   */
  private void exchangeHalves(MemorySegment rows, long rowsOffset, MemorySegment workspace, long forwardAt,
      long reverseAt, boolean intoRows) {
    for (int t = 0; t < steps; t++) {
      for (int b = 0; b < batch; b++) {
        long row = 4 * (rowsOffset + ((long) t * batch + b) * 2 * hidden);
        long forward = 4 * (forwardAt + ((long) t * batch + b) * hidden);
        long reverse = 4 * (reverseAt + ((long) (steps - 1 - t) * batch + b) * hidden);
        if (intoRows) {
          SegmentLoops.copy(workspace, forward, rows, row, hidden);
          SegmentLoops.copy(workspace, reverse, rows, row + 4L * hidden, hidden);
        } else {
          SegmentLoops.copy(rows, row, workspace, forward, hidden);
          SegmentLoops.copy(rows, row + 4L * hidden, workspace, reverse, hidden);
        }
      }
    }
  }

  /** {@code dx[t] += } the reverse direction's dx, stored in reversed time. */
  final void addReverseInputGradient(MemorySegment workspace, long ws, MemorySegment dx, long dxOffset) {
    long stepFloats = (long) batch * input;
    long src = reversedInputGradientAt(ws);
    for (int t = 0; t < steps; t++) {
      SegmentLoops.addInto(workspace, 4 * (src + (steps - 1 - t) * stepFloats), dx, 4 * (dxOffset + t * stepFloats),
          (int) stepFloats);
    }
  }

  /** Checks a buffer the layer needs. */
  static void check(String name, MemorySegment s, long offset, long floats, boolean written, String shape) {
    RecurrentChecks.check(name, shape, s, offset, floats, written);
  }

  /** Checks a buffer the caller may leave null. */
  static void optional(String name, MemorySegment s, long offset, long floats, boolean written, String shape) {
    if (s != null) {
      RecurrentChecks.check(name, shape, s, offset, floats, written);
    }
  }
}
