package dev.lanes.kernels.reference;

/**
 * Double-precision reference for {@link dev.lanes.kernels.Lstm}, written to mirror the equations
 * step by step, with the same layouts (x {@code [T,B,I]}, y {@code [T,B,H]}, weights
 * {@code [4H, I]} and {@code [4H, H]}, gate order i, f, g, o). Optional inputs are null for zeros.
 */
public final class LstmReference {
  private LstmReference() {}

  /** Everything the forward computes: activated gates {@code [T,B,4H]}, c and y {@code [T,B,H]}. */
  public record States(double[] gates, double[] c, double[] y) {}

  /** The gradients, and the pre-activation gate gradients {@code [T,B,4H]}. */
  public record Gradients(double[] dx, double[] dwIh, double[] dwHh, double[] db, double[] dh0, double[] dc0,
      double[] dgates) {}

  private static double sigmoid(double z) {
    return 1 / (1 + Math.exp(-z));
  }

  private static double at(double[] v, int i) {
    return v == null ? 0 : v[i];
  }

  /**
   * One step for the whole batch from {@code hPrev, cPrev} ({@code [B, H]}, null for zeros) and
   * x_t ({@code [B, I]} at {@code xFrom}): writes the activated gates, c_t and h_t at
   * {@code gFrom} and {@code hFrom} of the given arrays.
   */
  public static void step(int batch, int input, int hidden, double[] x, int xFrom, double[] hPrev, int hPrevFrom,
      double[] cPrev, int cPrevFrom, double[] wIh, double[] wHh, double[] bIh, double[] bHh, double[] gates,
      int gFrom, double[] c, double[] h, int hFrom) {
    for (int b = 0; b < batch; b++) {
      for (int r = 0; r < 4 * hidden; r++) {
        double z = at(bIh, r) + at(bHh, r);
        for (int k = 0; k < input; k++) {
          z += x[xFrom + b * input + k] * wIh[r * input + k];
        }
        if (hPrev != null) {
          for (int k = 0; k < hidden; k++) {
            z += hPrev[hPrevFrom + b * hidden + k] * wHh[r * hidden + k];
          }
        }
        gates[gFrom + b * 4 * hidden + r] = r / hidden == 2 ? Math.tanh(z) : sigmoid(z);
      }
      for (int j = 0; j < hidden; j++) {
        int g0 = gFrom + b * 4 * hidden;
        double i = gates[g0 + j];
        double f = gates[g0 + hidden + j];
        double g = gates[g0 + 2 * hidden + j];
        double o = gates[g0 + 3 * hidden + j];
        double cp = cPrev == null ? 0 : cPrev[cPrevFrom + b * hidden + j];
        double cell = f * cp + i * g;
        c[hFrom + b * hidden + j] = cell;
        h[hFrom + b * hidden + j] = o * Math.tanh(cell);
      }
    }
  }

  public static States forward(int steps, int batch, int input, int hidden, double[] x, double[] wIh, double[] wHh,
      double[] bIh, double[] bHh, double[] h0, double[] c0) {
    double[] gates = new double[steps * batch * 4 * hidden];
    double[] c = new double[steps * batch * hidden];
    double[] y = new double[steps * batch * hidden];
    int state = batch * hidden;
    for (int t = 0; t < steps; t++) {
      int previous = Math.max(t - 1, 0) * state;
      step(batch, input, hidden, x, t * batch * input, t == 0 ? h0 : y, previous, t == 0 ? c0 : c, previous, wIh, wHh,
          bIh, bHh, gates, t * batch * 4 * hidden, c, y, t * state);
    }
    return new States(gates, c, y);
  }

  /**
   * Backward through time from given forward states (the reference's own, or a kernel's, so that
   * a test can separate the backward's rounding from the forward's). With {@code magnitude} set,
   * every operand is replaced by its absolute value: the result bounds the sum of the magnitudes
   * of the terms each gradient is made of, for the running-error bounds of the tests. Gradients
   * of optional inputs are returned regardless.
   */
  public static Gradients backward(int steps, int batch, int input, int hidden, double[] x, double[] wIh,
      double[] wHh, double[] h0, double[] c0, States s, double[] dy, double[] dhT, double[] dcT, boolean magnitude) {
    int state = batch * hidden;
    int g4 = 4 * hidden;
    double[] dh = new double[state];
    double[] dc = new double[state];
    for (int k = 0; k < state; k++) {
      dh[k] = m(at(dhT, k), magnitude);
      dc[k] = m(at(dcT, k), magnitude);
    }
    double[] dgates = new double[steps * batch * g4];
    for (int t = steps - 1; t >= 0; t--) {
      for (int b = 0; b < batch; b++) {
        for (int j = 0; j < hidden; j++) {
          int k = b * hidden + j;
          int g0 = (t * batch + b) * g4;
          double i = s.gates()[g0 + j];
          double f = s.gates()[g0 + hidden + j];
          double g = s.gates()[g0 + 2 * hidden + j];
          double o = s.gates()[g0 + 3 * hidden + j];
          double cell = s.c()[t * state + k];
          double cp = t == 0 ? at(c0, k) : s.c()[(t - 1) * state + k];
          double tc = Math.tanh(cell);
          double d = dh[k] + (dy == null ? 0 : m(dy[t * state + k], magnitude));
          double dcell = m(d * o * (1 - tc * tc), magnitude) + dc[k];
          dgates[g0 + j] = m(dcell * g * i * (1 - i), magnitude);
          dgates[g0 + hidden + j] = m(dcell * cp * f * (1 - f), magnitude);
          dgates[g0 + 2 * hidden + j] = m(dcell * i * (1 - g * g), magnitude);
          dgates[g0 + 3 * hidden + j] = m(d * tc * o * (1 - o), magnitude);
          dc[k] = m(dcell * f, magnitude);
        }
      }
      for (int b = 0; b < batch; b++) {
        for (int k = 0; k < hidden; k++) {
          double sum = 0;
          for (int r = 0; r < g4; r++) {
            sum += m(dgates[(t * batch + b) * g4 + r] * wHh[r * hidden + k], magnitude);
          }
          dh[b * hidden + k] = sum;
        }
      }
    }
    double[] dx = new double[steps * batch * input];
    double[] dwIh = new double[g4 * input];
    double[] dwHh = new double[g4 * hidden];
    double[] db = new double[g4];
    for (int t = 0; t < steps; t++) {
      for (int b = 0; b < batch; b++) {
        int row = t * batch + b;
        for (int r = 0; r < g4; r++) {
          double dz = dgates[row * g4 + r];
          db[r] += dz;
          for (int k = 0; k < input; k++) {
            dwIh[r * input + k] += m(dz * x[row * input + k], magnitude);
            dx[row * input + k] += m(dz * wIh[r * input + k], magnitude);
          }
          for (int k = 0; k < hidden; k++) {
            double hp = t == 0 ? at(h0, b * hidden + k) : s.y()[(t - 1) * state + b * hidden + k];
            dwHh[r * hidden + k] += m(dz * hp, magnitude);
          }
        }
      }
    }
    return new Gradients(dx, dwIh, dwHh, db, dh, dc, dgates);
  }

  private static double m(double v, boolean magnitude) {
    return magnitude ? Math.abs(v) : v;
  }
}
