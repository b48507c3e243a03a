package dev.lanes.kernels.reference;

/**
 * Double-precision reference for {@link dev.lanes.kernels.Gru}, mirroring PyTorch's equations
 * step by step (gate order r, z, n; {@code n = tanh(gi_n + r gh_n)}), in the layouts of
 * {@link LstmReference}. Optional inputs are null for zeros.
 */
public final class GruReference {
  private GruReference() {}

  /** The forward's states: activated gates {@code [T,B,3H]}, {@code gh_n} and y {@code [T,B,H]}. */
  public record States(double[] gates, double[] ghn, double[] y) {}

  /** The gradients ({@code db_ih} and {@code db_hh} differ in their n part). */
  public record Gradients(double[] dx, double[] dwIh, double[] dwHh, double[] dbIh, double[] dbHh, double[] dh0) {}

  private static double at(double[] v, int i) {
    return v == null ? 0 : v[i];
  }

  /** One step for the batch from {@code hPrev} (null for zeros); see {@link LstmReference#step}. */
  public static void step(int batch, int input, int hidden, double[] x, int xFrom, double[] hPrev, int hPrevFrom,
      double[] wIh, double[] wHh, double[] bIh, double[] bHh, double[] gates, int gFrom, double[] ghn,
      double[] h, int hFrom) {
    int g3 = 3 * hidden;
    for (int b = 0; b < batch; b++) {
      double[] gi = new double[g3];
      double[] gh = new double[g3];
      for (int r = 0; r < g3; r++) {
        gi[r] = at(bIh, r);
        gh[r] = at(bHh, r);
        for (int k = 0; k < input; k++) {
          gi[r] += x[xFrom + b * input + k] * wIh[r * input + k];
        }
        for (int k = 0; hPrev != null && k < hidden; k++) {
          gh[r] += hPrev[hPrevFrom + b * hidden + k] * wHh[r * hidden + k];
        }
      }
      int g0 = gFrom + b * g3;
      for (int j = 0; j < hidden; j++) {
        double r = 1 / (1 + Math.exp(-(gi[j] + gh[j])));
        double z = 1 / (1 + Math.exp(-(gi[hidden + j] + gh[hidden + j])));
        double n = Math.tanh(gi[2 * hidden + j] + r * gh[2 * hidden + j]);
        gates[g0 + j] = r;
        gates[g0 + hidden + j] = z;
        gates[g0 + 2 * hidden + j] = n;
        ghn[hFrom + b * hidden + j] = gh[2 * hidden + j];
        double hp = hPrev == null ? 0 : hPrev[hPrevFrom + b * hidden + j];
        h[hFrom + b * hidden + j] = (1 - z) * n + z * hp;
      }
    }
  }

  public static States forward(int steps, int batch, int input, int hidden, double[] x, double[] wIh, double[] wHh,
      double[] bIh, double[] bHh, double[] h0) {
    double[] gates = new double[steps * batch * 3 * hidden];
    double[] ghn = new double[steps * batch * hidden];
    double[] y = new double[steps * batch * hidden];
    int state = batch * hidden;
    for (int t = 0; t < steps; t++) {
      step(batch, input, hidden, x, t * batch * input, t == 0 ? h0 : y, Math.max(t - 1, 0) * state, wIh, wHh, bIh,
          bHh, gates, t * batch * 3 * hidden, ghn, y, t * state);
    }
    return new States(gates, ghn, y);
  }

  /**
   * Backward through time from given states; with {@code magnitude}, every operand is replaced by
   * its absolute value (see {@link LstmReference#backward}).
   */
  public static Gradients backward(int steps, int batch, int input, int hidden, double[] x, double[] wIh,
      double[] wHh, double[] h0, States s, double[] dy, double[] dhT, boolean magnitude) {
    int state = batch * hidden;
    int g3 = 3 * hidden;
    double[] dh = new double[state];
    for (int k = 0; k < state; k++) {
      dh[k] = m(at(dhT, k), magnitude);
    }
    double[] dgi = new double[steps * batch * g3];
    double[] dgh = new double[steps * batch * g3];
    for (int t = steps - 1; t >= 0; t--) {
      double[] next = new double[state];
      for (int b = 0; b < batch; b++) {
        for (int j = 0; j < hidden; j++) {
          int k = b * hidden + j;
          int g0 = (t * batch + b) * g3;
          double r = s.gates()[g0 + j];
          double z = s.gates()[g0 + hidden + j];
          double n = s.gates()[g0 + 2 * hidden + j];
          double hp = t == 0 ? at(h0, k) : s.y()[(t - 1) * state + k];
          double d = dh[k] + (dy == null ? 0 : m(dy[t * state + k], magnitude));
          double dz = m(d * (hp - n) * z * (1 - z), magnitude);
          double dn = m(d * (1 - z) * (1 - n * n), magnitude);
          double dr = m(dn * s.ghn()[t * state + k] * r * (1 - r), magnitude);
          dgi[g0 + j] = dr;
          dgi[g0 + hidden + j] = dz;
          dgi[g0 + 2 * hidden + j] = dn;
          dgh[g0 + j] = dr;
          dgh[g0 + hidden + j] = dz;
          dgh[g0 + 2 * hidden + j] = m(dn * r, magnitude);
          next[k] = m(d * z, magnitude);
        }
      }
      for (int b = 0; b < batch; b++) {
        for (int k = 0; k < hidden; k++) {
          double sum = next[b * hidden + k];
          for (int q = 0; q < g3; q++) {
            sum += m(dgh[(t * batch + b) * g3 + q] * wHh[q * hidden + k], magnitude);
          }
          next[b * hidden + k] = sum;
        }
      }
      dh = next;
    }
    double[] dx = new double[steps * batch * input];
    double[] dwIh = new double[g3 * input];
    double[] dwHh = new double[g3 * hidden];
    double[] dbIh = new double[g3];
    double[] dbHh = new double[g3];
    for (int t = 0; t < steps; t++) {
      for (int b = 0; b < batch; b++) {
        int row = t * batch + b;
        for (int q = 0; q < g3; q++) {
          double di = dgi[row * g3 + q];
          double dr = dgh[row * g3 + q];
          dbIh[q] += di;
          dbHh[q] += dr;
          for (int k = 0; k < input; k++) {
            dwIh[q * input + k] += m(di * x[row * input + k], magnitude);
            dx[row * input + k] += m(di * wIh[q * input + k], magnitude);
          }
          for (int k = 0; k < hidden; k++) {
            double hp = t == 0 ? at(h0, b * hidden + k) : s.y()[(t - 1) * state + b * hidden + k];
            dwHh[q * hidden + k] += m(dr * hp, magnitude);
          }
        }
      }
    }
    return new Gradients(dx, dwIh, dwHh, dbIh, dbHh, dh);
  }

  private static double m(double v, boolean magnitude) {
    return magnitude ? Math.abs(v) : v;
  }
}
