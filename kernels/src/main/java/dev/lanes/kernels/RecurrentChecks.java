package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Buffer checks of {@link Lstm} and {@link Gru}, with messages that name the buffer, its
 * documented shape for this layer (built only on failure) and the numbers.
 */
final class RecurrentChecks {
  private final int steps;
  private final int batch;
  private final int input;
  private final int hidden;
  private final int gates;

  RecurrentChecks(int steps, int batch, int input, int hidden, int gates) {
    this.steps = steps;
    this.batch = batch;
    this.input = input;
    this.hidden = hidden;
    this.gates = gates;
  }

  /** Dimensions every layer must have, and that its GEMMs can address with int32. */
  static void dimensions(int steps, int batch, int input, int hidden, int gates) {
    Checks.positive(steps, "steps");
    Checks.positive(batch, "batch");
    Checks.positive(input, "input");
    Checks.positive(hidden, "hidden");
    if ((long) steps * batch * (2L * gates + 1) * hidden > Integer.MAX_VALUE
        || (long) gates * hidden * Math.max(input, hidden) > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("recurrent layer of T=" + steps + " B=" + batch + " I=" + input + " H="
          + hidden + " is too large for int32 GEMM dimensions");
    }
  }

  void weights(MemorySegment wIh, long wIhOffset, MemorySegment wHh, long wHhOffset) {
    check("W_ih", wIh, wIhOffset, (long) gates * hidden * input, false);
    check("W_hh", wHh, wHhOffset, (long) gates * hidden * hidden, false);
  }

  void check(String name, MemorySegment s, long offset, long floats, boolean written) {
    Checks.accessible(s, name, written);
    if (offset < 0 || offset > Checks.floats(s) - floats) {
      throw outOfBounds(name, shapeOf(name), s, offset, floats);
    }
  }

  /** {@link #check} for a buffer whose documented shape the caller states. */
  static void check(String name, String shape, MemorySegment s, long offset, long floats, boolean written) {
    Checks.accessible(s, name, written);
    if (offset < 0 || offset > Checks.floats(s) - floats) {
      throw outOfBounds(name, shape, s, offset, floats);
    }
  }

  private static IndexOutOfBoundsException outOfBounds(String name, String shape, MemorySegment s, long offset,
      long floats) {
    return new IndexOutOfBoundsException(name + " " + shape + " needs " + floats + " floats at offset " + offset
        + ", that is [" + offset + ", " + (offset + floats) + "), but its buffer holds " + Checks.floats(s));
  }

  void optional(String name, MemorySegment s, long offset, long floats, boolean written) {
    if (s != null) {
      check(name, s, offset, floats, written);
    }
  }

  private String shapeOf(String name) {
    String g = gates + "H";
    return switch (name) {
      case "x", "dx" -> "[T,B,I] = [" + steps + "," + batch + "," + input + "]";
      case "y", "dy" -> "[T,B,H] = [" + steps + "," + batch + "," + hidden + "]";
      case "W_ih", "dW_ih" -> "[" + g + ",I] = [" + gates * hidden + "," + input + "]";
      case "W_hh", "dW_hh" -> "[" + g + ",H] = [" + gates * hidden + "," + hidden + "]";
      case "b_ih", "b_hh", "db_ih", "db_hh" -> "[" + g + "] = [" + gates * hidden + "]";
      case "workspace" -> "(see workspaceFloats())";
      default -> "[B,H] = [" + batch + "," + hidden + "]";
    };
  }

  /**
   * The weight and input gradients both layers get from GEMMs merged across time, given the
   * pre-activation gradients of the input projection {@code dGi [T B, G H]} and of the recurrent
   * one {@code dGh} (the same rows for the LSTM; different n parts for the GRU), both in the
   * workspace: {@code dW_ih = dGi^T X}, {@code dW_hh = dGh_0^T h0 + dGh_{1..}^T y_{0..T-2}} (h0
   * null: zeros), {@code dx = dGi W_ih} (unless dx is null). All overwritten.
   */
  void mergedGradients(MemorySegment ws, long dGi, long dGh, MemorySegment x, long xOffset, MemorySegment wIh,
      long wIhOffset, MemorySegment h0, long h0Offset, MemorySegment y, long yOffset, MemorySegment dx, long dxOffset,
      MemorySegment dwIh, long dwIhOffset, MemorySegment dwHh, long dwHhOffset, Parallelism parallelism) {
    int g = gates * hidden;
    int rows = steps * batch;
    Gemm.multiply(true, false, g, input, rows, 1f, ws, dGi, g, x, xOffset, input, 0f, dwIh, dwIhOffset, input,
        parallelism);
    float beta = 0f;
    if (h0 != null) {
      Gemm.multiply(true, false, g, hidden, batch, 1f, ws, dGh, g, h0, h0Offset, hidden, 0f, dwHh, dwHhOffset, hidden,
          parallelism);
      beta = 1f;
    }
    if (steps > 1) {
      Gemm.multiply(true, false, g, hidden, rows - batch, 1f, ws, dGh + (long) batch * g, g, y, yOffset, hidden, beta,
          dwHh, dwHhOffset, hidden, parallelism);
    } else if (h0 == null) {
      for (long r = 0; r < g; r++) {
        SegmentLoops.fill(dwHh, 4 * (dwHhOffset + r * hidden), hidden, 0f);
      }
    }
    if (dx != null) {
      Gemm.multiply(false, false, rows, input, g, 1f, ws, dGi, g, wIh, wIhOffset, input, 0f, dx, dxOffset, input,
          parallelism);
    }
  }
}
