package dev.lanes.verification;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

/** What the LSTM and GRU properties share: random data, and comparisons that name the step. */
final class RecurrentCases {
  static final double U = Math.scalb(1.0, -24);
  static final double TINY = Math.scalb(1.0, -126);

  private RecurrentCases() {}

  static float[] values(SplittableRandom r, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
    }
    return v;
  }

  static MemorySegment seg(float[] v) {
    return v == null ? null : MemorySegment.ofArray(v);
  }

  static double[] concat(double[]... parts) {
    int n = 0;
    for (double[] part : parts) {
      n += part.length;
    }
    double[] all = new double[n];
    int at = 0;
    for (double[] part : parts) {
      System.arraycopy(part, 0, all, at, part.length);
      at += part.length;
    }
    return all;
  }

  /** Every entry within {@code k u magnitude + TINY} (the running-error bound of the tests). */
  static void compare(String what, long seed, float[] got, double[] want, double[] magnitude, double k) {
    for (int i = 0; i < got.length; i++) {
      close(what, seed, -1, i, got[i], want[i], k * U * magnitude[i] + TINY);
    }
  }

  static void close(String what, long seed, int step, int i, double got, double want, double bound) {
    if (!(Math.abs(got - want) <= bound)) {
      throw new AssertionError(what + (step >= 0 ? " at step " + step : "") + "[" + i + "] = " + got
          + " but reference " + want + ": error " + Math.abs(got - want) + " > bound " + bound + " (case seed "
          + seed + ")");
    }
  }

  // ---- The bidirectional layers' definition, from two unidirectional runs ----

  /** Direction d's slice of a [2, ...] buffer, or null. */
  static float[] part(float[] both, int d) {
    return both == null ? null : Arrays.copyOfRange(both, d * both.length / 2, (d + 1) * both.length / 2);
  }

  /** Half d of each 2H-wide row of a [rows, 2H] buffer, as [rows, H]. */
  static float[] half(float[] rows2h, int rows, int h, int d) {
    float[] out = new float[rows * h];
    for (int row = 0; row < rows; row++) {
      System.arraycopy(rows2h, row * 2 * h + d * h, out, row * h, h);
    }
    return out;
  }

  static float[] reverseTime(float[] v, int steps, int perStep) {
    float[] out = new float[v.length];
    for (int s = 0; s < steps; s++) {
      System.arraycopy(v, (steps - 1 - s) * perStep, out, s * perStep, perStep);
    }
    return out;
  }

  static float[] concat(float[] a, float[] b) {
    return LstmPropertiesTest.floats(a, b);
  }

  /**
   * The bidirectional y {@code [T, B, 2H]} by definition: row by row, the forward direction's output
   * and then the reverse direction's, which that direction produced in reversed time.
   */
  static float[] bidirectionalOutput(float[] forward, float[] reverseInReversedTime, int steps, int batch, int h) {
    float[] reverse = reverseTime(reverseInReversedTime, steps, batch * h);
    float[] y = new float[2 * forward.length];
    for (int row = 0; row < steps * batch; row++) {
      System.arraycopy(forward, row * h, y, row * 2 * h, h);
      System.arraycopy(reverse, row * h, y, row * 2 * h + h, h);
    }
    return y;
  }

  /** The bidirectional dx by definition: the forward direction's plus the reverse one's, put back in time order. */
  static float[] bidirectionalInputGradient(float[] forward, float[] reverseInReversedTime, int steps, int perStep) {
    float[] reverse = reverseTime(reverseInReversedTime, steps, perStep);
    float[] dx = new float[forward.length];
    for (int i = 0; i < dx.length; i++) {
      dx[i] = forward[i] + reverse[i];
    }
    return dx;
  }
}
