package dev.lanes.verification;

import java.lang.foreign.MemorySegment;
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
}
