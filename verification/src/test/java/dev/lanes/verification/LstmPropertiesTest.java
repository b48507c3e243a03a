package dev.lanes.verification;

import static dev.lanes.verification.RecurrentCases.TINY;
import static dev.lanes.verification.RecurrentCases.U;
import static dev.lanes.verification.RecurrentCases.close;
import static dev.lanes.verification.RecurrentCases.compare;
import static dev.lanes.verification.RecurrentCases.concat;
import static dev.lanes.verification.RecurrentCases.seg;
import static dev.lanes.verification.RecurrentCases.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Lstm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.LstmReference;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * The LSTM: the reference's backward through time against central differences of its forward;
 * the kernel's forward checked step by step against the reference step taken from the kernel's
 * own previous state; the kernel's backward against the reference backward run from the kernel's
 * own forward states, within a running-error bound. Both bounds are derived below
 * ({@code u = 2^-24}).
 */
class LstmPropertiesTest {

  /** A random LSTM problem; weights scaled by 1/sqrt(fan-in), as PyTorch initializes them. */
  record Problem(int steps, int batch, int input, int hidden, float[] x, float[] wIh, float[] wHh, float[] bIh,
      float[] bHh, float[] h0, float[] c0, float[] dy, float[] dhT, float[] dcT) {
    static Problem random(long seed, int maxSteps, int maxBatch, int maxInput, int maxHidden) {
      return random(seed, 1, maxSteps, maxBatch, maxInput, maxHidden);
    }

    static Problem random(long seed, int minSteps, int maxSteps, int maxBatch, int maxInput, int maxHidden) {
      return random(seed, minSteps, maxSteps, 1, maxBatch, maxInput, 1, maxHidden);
    }

    static Problem random(long seed, int minSteps, int maxSteps, int minBatch, int maxBatch, int maxInput,
        int minHidden, int maxHidden) {
      SplittableRandom r = new SplittableRandom(seed);
      int t = minSteps + r.nextInt(maxSteps - minSteps + 1);
      int b = minBatch + r.nextInt(maxBatch - minBatch + 1);
      int in = 1 + r.nextInt(maxInput);
      int h = minHidden + r.nextInt(maxHidden - minHidden + 1);
      double k = 1 / Math.sqrt(h);
      boolean state = r.nextBoolean();
      return new Problem(t, b, in, h, values(r, t * b * in, 2), values(r, 4 * h * in, k), values(r, 4 * h * h, k),
          values(r, 4 * h, k), values(r, 4 * h, k), state ? values(r, b * h, 1) : null,
          state ? values(r, b * h, 1) : null, values(r, t * b * h, 1), r.nextBoolean() ? values(r, b * h, 1) : null,
          r.nextBoolean() ? values(r, b * h, 1) : null);
    }
  }

  // ---- The reference against central differences ----

  @Test
  void referenceBackwardMatchesCentralDifferences() {
    Properties.qt(40).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 3, 2, 3, 3);
      int t = p.steps();
      int b = p.batch();
      int in = p.input();
      int h = p.hidden();
      double[] x = Doubles.of(p.x());
      double[] wIh = Doubles.of(p.wIh());
      double[] wHh = Doubles.of(p.wHh());
      double[] bIh = Doubles.of(p.bIh());
      double[] bHh = Doubles.of(p.bHh());
      double[] h0 = p.h0() == null ? new double[b * h] : Doubles.of(p.h0());
      double[] c0 = p.c0() == null ? new double[b * h] : Doubles.of(p.c0());
      double[] dy = Doubles.of(p.dy());
      double[] dhT = p.dhT() == null ? new double[b * h] : Doubles.of(p.dhT());
      double[] dcT = p.dcT() == null ? new double[b * h] : Doubles.of(p.dcT());
      LstmReference.States s = LstmReference.forward(t, b, in, h, x, wIh, wHh, bIh, bHh, h0, c0);
      LstmReference.Gradients grads = LstmReference.backward(t, b, in, h, x, wIh, wHh, h0, c0, s, dy, dhT, dcT, false);
      // L = <dy, y> + <dhT, hT> + <dcT, cT>: the outputs as one vector [y, hT, cT] against [dy, dhT, dcT].
      double[] upstream = concat(dy, dhT, dcT);
      java.util.function.Function<double[][], double[]> outputs = in6 -> {
        LstmReference.States o = LstmReference.forward(t, b, in, h, in6[0], in6[1], in6[2], in6[3], bHh, in6[4], in6[5]);
        return concat(o.y(), java.util.Arrays.copyOfRange(o.y(), (t - 1) * b * h, t * b * h),
            java.util.Arrays.copyOfRange(o.c(), (t - 1) * b * h, t * b * h));
      };
      double[][] inputs = {x, wIh, wHh, bIh, h0, c0};
      double[][] analytic = {grads.dx(), grads.dwIh(), grads.dwHh(), grads.db(), grads.dh0(), grads.dc0()};
      String[] names = {"dx", "dW_ih", "dW_hh", "db", "dh0", "dc0"};
      // Each output is a chain of at most T steps of (I + H + 10) double operations on values of
      // size at most 4 (|x| <= 2, weights 1/sqrt(H)); the third derivatives of these compositions
      // of sigmoid and tanh with unit-size weights stay below 10 per unit of upstream.
      double quotient = NumericalGradient.roundoff(t * (in + h + 10), 4 * Doubles.absDot(upstream, ones(upstream.length)))
          + 1e-12 * 10 / 6 * Doubles.absDot(upstream, ones(upstream.length));
      for (int which = 0; which < inputs.length; which++) {
        int index = which;
        NumericalGradient.check("lstm " + names[which], inputs[which], upstream, analytic[which], v -> {
          double[][] copy = inputs.clone();
          copy[index] = v;
          return outputs.apply(copy);
        }, quotient, 30);
      }
    });
  }

  private static double[] ones(int n) {
    double[] v = new double[n];
    java.util.Arrays.fill(v, 1);
    return v;
  }

  // ---- The kernel ----

  /** A kernel run: its outputs and a copy of the forward's workspace (gates, then c). */
  record Run(float[] y, float[] hT, float[] cT, float[] gates, float[] c, float[] dx, float[] dwIh, float[] dwHh,
      float[] dbIh, float[] dbHh, float[] dh0, float[] dc0) {
    static Run of(Problem p, Parallelism parallelism) {
      Lstm lstm = Lstm.of(p.steps(), p.batch(), p.input(), p.hidden());
      int t = p.steps();
      int b = p.batch();
      int h = p.hidden();
      int state = b * h;
      float[] y = new float[t * state];
      float[] hT = new float[state];
      float[] cT = new float[state];
      MemorySegment ws = java.lang.foreign.Arena.ofAuto().allocate(4 * lstm.workspaceFloats());
      MemorySegment shared = java.lang.foreign.Arena.ofAuto().allocate(4L * p.x().length);
      MemorySegment.copy(seg(p.x()), 0, shared, 0, 4L * p.x().length);
      lstm.forward(shared, 0, seg(p.wIh()), 0, seg(p.wHh()), 0, seg(p.bIh()), 0, seg(p.bHh()), 0, seg(p.h0()), 0,
          seg(p.c0()), 0, seg(y), 0, seg(hT), 0, seg(cT), 0, ws, 0, parallelism);
      float[] gates = ws.asSlice(0, 16L * t * state).toArray(ValueLayout.JAVA_FLOAT);
      float[] c = ws.asSlice(16L * t * state, 4L * t * state).toArray(ValueLayout.JAVA_FLOAT);
      float[] dx = new float[p.x().length];
      float[] dwIh = new float[p.wIh().length];
      float[] dwHh = new float[p.wHh().length];
      float[] dbIh = new float[4 * h];
      float[] dbHh = new float[4 * h];
      float[] dh0 = new float[state];
      float[] dc0 = new float[state];
      lstm.backward(shared, 0, seg(p.wIh()), 0, seg(p.wHh()), 0, seg(p.h0()), 0, seg(y), 0, seg(p.dy()), 0,
          seg(p.dhT()), 0, seg(p.dcT()), 0, seg(dx), 0, seg(dwIh), 0, seg(dwHh), 0, seg(dbIh), 0, seg(dbHh), 0,
          seg(dh0), 0, seg(dc0), 0, ws, 0, parallelism);
      return new Run(y, hT, cT, gates, c, dx, dwIh, dwHh, dbIh, dbHh, dh0, dc0);
    }
  }

  @Test
  void forwardMatchesTheReferenceStepByStep() {
    Properties.qt(150).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 5, 5, 20, 40);
      Run run = Run.of(p, Parallelism.sequential());
      int t = p.steps();
      int b = p.batch();
      int in = p.input();
      int h = p.hidden();
      int state = b * h;
      assertArrayEquals(java.util.Arrays.copyOfRange(run.y(), (t - 1) * state, t * state), run.hT(), "hT is y_T");
      assertArrayEquals(java.util.Arrays.copyOfRange(run.c(), (t - 1) * state, t * state), run.cT(), "cT is c_T");
      double[] x = Doubles.of(p.x());
      double[] wIh = Doubles.of(p.wIh());
      double[] wHh = Doubles.of(p.wHh());
      for (int step = 0; step < t; step++) {
        // The reference step from the kernel's own h_{t-1} and c_{t-1}.
        double[] hPrev = step == 0 ? Doubles.of(p.h0()) : Doubles.of(java.util.Arrays.copyOfRange(run.y(),
            (step - 1) * state, step * state));
        double[] cPrev = step == 0 ? Doubles.of(p.c0()) : Doubles.of(java.util.Arrays.copyOfRange(run.c(),
            (step - 1) * state, step * state));
        double[] gates = new double[b * 4 * h];
        double[] c = new double[state];
        double[] y = new double[state];
        LstmReference.step(b, in, h, x, step * b * in, hPrev, 0, cPrev, 0, wIh, wHh, Doubles.of(p.bIh()),
            Doubles.of(p.bHh()), gates, 0, c, y, 0);
        for (int bb = 0; bb < b; bb++) {
          double[] gateError = new double[4 * h];
          for (int r = 0; r < 4 * h; r++) {
            // z: the bias row plus two GEMMs (k = I, then H, each adding onto what is there):
            // (I + H + 6) u times the sum of the magnitudes of its terms.
            double magnitude = Math.abs(p.bIh()[r]) + Math.abs(p.bHh()[r]);
            for (int k = 0; k < in; k++) {
              magnitude += Math.abs(x[(step * b + bb) * in + k] * wIh[r * in + k]);
            }
            for (int k = 0; hPrev != null && k < h; k++) {
              magnitude += Math.abs(hPrev[bb * h + k] * wHh[r * h + k]);
            }
            double ez = (in + h + 6) * U * magnitude;
            double a = gates[bb * 4 * h + r];
            // sigmoid: slope s(1-s) times ez, plus its own 5u; tanh: (1 - g^2) ez plus 6u.
            double error = r / h == 2 ? (1 - a * a) * ez + 6 * U * Math.abs(a) : a * (1 - a) * ez + 5 * U * a + TINY;
            gateError[r] = error;
            close("gate", seed, step, r, run.gates()[(step * b + bb) * 4 * h + r], a, error);
          }
          for (int j = 0; j < h; j++) {
            double i = gates[bb * 4 * h + j];
            double f = gates[bb * 4 * h + h + j];
            double g = gates[bb * 4 * h + 2 * h + j];
            double o = gates[bb * 4 * h + 3 * h + j];
            double cp = cPrev == null ? 0 : cPrev[bb * h + j];
            double cell = c[bb * h + j];
            // c = fma(f, c_prev, i g): the gate errors carried, the product and the fma rounding.
            double ec = Math.abs(cp) * gateError[h + j] + Math.abs(g) * gateError[j] + Math.abs(i) * gateError[2 * h + j]
                + U * (Math.abs(i * g) + Math.abs(cell));
            close("c", seed, step, j, run.c()[step * state + bb * h + j], cell, ec);
            double tc = Math.tanh(cell);
            // h = o tanh(c): o's error, tanh's slope times c's error plus its 6u, the product.
            double eh = Math.abs(tc) * gateError[3 * h + j] + o * ((1 - tc * tc) * ec + 6 * U * Math.abs(tc))
                + U * Math.abs(y[bb * h + j]);
            close("h", seed, step, j, run.y()[step * state + bb * h + j], y[bb * h + j], eh);
          }
        }
      }
    });
  }

  @Test
  void backwardMatchesTheReferenceFromTheSameStates() {
    Properties.qt(150).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 5, 5, 20, 40);
      Run run = Run.of(p, Parallelism.sequential());
      int t = p.steps();
      int b = p.batch();
      int in = p.input();
      int h = p.hidden();
      LstmReference.Gradients ref = referenceBackward(p, run, false);
      LstmReference.Gradients mag = referenceBackward(p, run, true);
      // Given the states, the backward is linear in the upstream gradients and computed with +
      // and x only (tanh(c) is recomputed with 6u). Along any path a term meets at most, per step,
      // the dh GEMM (a reduction over 4H: 4H + 4H/256 + 3 roundings), the dy add and the fused
      // cell pass (12, tanh's 6u included); then a final reduction over T B (weights, biases) or
      // 4H (dx). So each gradient is within K u times the sum of its terms' magnitudes (the
      // magnitude run), K = T (4H + 4H/256 + 16) + T B + T B/256 + 4H + 4.
      double k = backwardRoundings(t, b, h);
      compare("dx", seed, run.dx(), ref.dx(), mag.dx(), k);
      compare("dW_ih", seed, run.dwIh(), ref.dwIh(), mag.dwIh(), k);
      compare("dW_hh", seed, run.dwHh(), ref.dwHh(), mag.dwHh(), k);
      compare("db_ih", seed, run.dbIh(), ref.db(), mag.db(), k);
      compare("db_hh", seed, run.dbHh(), ref.db(), mag.db(), k);
      compare("dh0", seed, run.dh0(), ref.dh0(), mag.dh0(), k);
      compare("dc0", seed, run.dc0(), ref.dc0(), mag.dc0(), k);
    });
  }

  /**
   * Two threads give one thread's bits. The sizes make the kernel cut the batch between the threads
   * (it does from 4 x B x H = 32768 gate floats per step, two parts of at least 16384 each), so
   * each thread runs the recurrence, step GEMMs included, over its own rows.
   */
  @Test
  void resultsDoNotDependOnTheThreadCount() {
    Properties.qt(20).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 1, 4, 33, 56, 40, 250, 300);
      Run one = Run.of(p, Parallelism.sequential());
      Run two = Run.of(p, Parallelism.threads(2));
      assertArrayEquals(one.y(), two.y(), "y on 2 threads");
      assertArrayEquals(one.hT(), two.hT(), "hT on 2 threads");
      assertArrayEquals(one.cT(), two.cT(), "cT on 2 threads");
      assertArrayEquals(one.dx(), two.dx(), "dx on 2 threads");
      assertArrayEquals(one.dwIh(), two.dwIh(), "dwIh on 2 threads");
      assertArrayEquals(one.dwHh(), two.dwHh(), "dwHh on 2 threads");
      assertArrayEquals(one.dbIh(), two.dbIh(), "dbIh on 2 threads");
      assertArrayEquals(one.dbHh(), two.dbHh(), "dbHh on 2 threads");
      assertArrayEquals(one.dh0(), two.dh0(), "dh0 on 2 threads");
      assertArrayEquals(one.dc0(), two.dc0(), "dc0 on 2 threads");
    });
  }

  /**
   * Truncated BPTT: a sequence run as two chunks, the state handed over (hT, cT to h0, c0 forward;
   * dh0, dc0 to dhT, dcT backward), is the whole sequence.
   *
   * <p>Bitwise for y, hT, cT, dx, dh0 and dc0: every step sees the same inputs in both runs, and
   * each row of a GEMM is summed in the same order whatever the number of rows. The weight and
   * bias gradients are sums over all T B rows, which the chunks split into two sums and one add:
   * they are checked against the reference from the whole run's states within the whole run's
   * bound plus that one rounding.
   */
  @Test
  void twoChunksAreTheWholeSequence() {
    Properties.qt(60).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 2, 6, 5, 20, 40);
      int t = p.steps();
      int first = 1 + (int) Math.floorMod(seed, (long) t - 1);
      Run whole = Run.of(p, Parallelism.sequential());
      Problem one = chunk(p, 0, first, p.h0(), p.c0(), null, null);
      Run forwardOne = Run.of(one, Parallelism.sequential());
      Problem two = chunk(p, first, t, forwardOne.hT(), forwardOne.cT(), p.dhT(), p.dcT());
      Run runTwo = Run.of(two, Parallelism.sequential());
      Run runOne = Run.of(chunk(p, 0, first, p.h0(), p.c0(), runTwo.dh0(), runTwo.dc0()), Parallelism.sequential());
      String split = " (chunks of " + first + " and " + (t - first) + " steps, case seed " + seed + ")";
      assertArrayEquals(whole.y(), floats(runOne.y(), runTwo.y()), "y" + split);
      assertArrayEquals(whole.hT(), runTwo.hT(), "hT" + split);
      assertArrayEquals(whole.cT(), runTwo.cT(), "cT" + split);
      assertArrayEquals(whole.dx(), floats(runOne.dx(), runTwo.dx()), "dx" + split);
      assertArrayEquals(whole.dh0(), runOne.dh0(), "dh0" + split);
      assertArrayEquals(whole.dc0(), runOne.dc0(), "dc0" + split);

      int b = p.batch();
      int in = p.input();
      int h = p.hidden();
      LstmReference.Gradients ref = referenceBackward(p, whole, false);
      LstmReference.Gradients mag = referenceBackward(p, whole, true);
      // backwardMatchesTheReferenceFromTheSameStates' K, plus the add of the two chunks' sums.
      double k = backwardRoundings(t, b, h) + 1;
      compare("dW_ih" + split, seed, sum(runOne.dwIh(), runTwo.dwIh()), ref.dwIh(), mag.dwIh(), k);
      compare("dW_hh" + split, seed, sum(runOne.dwHh(), runTwo.dwHh()), ref.dwHh(), mag.dwHh(), k);
      compare("db_ih" + split, seed, sum(runOne.dbIh(), runTwo.dbIh()), ref.db(), mag.db(), k);
    });
  }

  /** K of backwardMatchesTheReferenceFromTheSameStates' bound (derived there). */
  private static double backwardRoundings(int t, int b, int h) {
    return t * (4.0 * h + 4.0 * h / 256 + 16) + t * b + t * b / 256.0 + 4 * h + 4;
  }

  /** The reference backward (or its magnitude run) from a kernel run's own forward states. */
  private static LstmReference.Gradients referenceBackward(Problem p, Run run, boolean magnitude) {
    LstmReference.States states = new LstmReference.States(Doubles.of(run.gates()), Doubles.of(run.c()),
        Doubles.of(run.y()));
    return LstmReference.backward(p.steps(), p.batch(), p.input(), p.hidden(), Doubles.of(p.x()), Doubles.of(p.wIh()),
        Doubles.of(p.wHh()), Doubles.of(p.h0()), Doubles.of(p.c0()), states, Doubles.of(p.dy()), Doubles.of(p.dhT()),
        Doubles.of(p.dcT()), magnitude);
  }

  /** Steps [from, to) of p, starting from the given state, with the given gradient flowing in at the end. */
  private static Problem chunk(Problem p, int from, int to, float[] h0, float[] c0, float[] dhT, float[] dcT) {
    int rows = p.batch();
    return new Problem(to - from, rows, p.input(), p.hidden(),
        java.util.Arrays.copyOfRange(p.x(), from * rows * p.input(), to * rows * p.input()), p.wIh(), p.wHh(), p.bIh(),
        p.bHh(), h0, c0, java.util.Arrays.copyOfRange(p.dy(), from * rows * p.hidden(), to * rows * p.hidden()), dhT,
        dcT);
  }

  static float[] floats(float[] a, float[] b) {
    float[] all = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }

  static float[] sum(float[] a, float[] b) {
    float[] out = new float[a.length];
    for (int i = 0; i < a.length; i++) {
      out[i] = a[i] + b[i];
    }
    return out;
  }

  @Test
  void badBuffersAreRejectedBeforeAnythingIsWritten() {
    Lstm lstm = Lstm.of(2, 3, 4, 5);
    float[] y = new float[2 * 3 * 5];
    java.util.Arrays.fill(y, 7f);
    MemorySegment ws = MemorySegment.ofArray(new float[(int) lstm.workspaceFloats()]);
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> lstm.forward(
        seg(new float[2 * 3 * 4]), 0, seg(new float[20 * 4]), 0, seg(new float[20 * 4]), 0, null, 0, null, 0, null, 0,
        null, 0, seg(y), 0, null, 0, null, 0, ws, 0, Parallelism.sequential()));
    assertTrue(e.getMessage().contains("W_hh [4H,H] = [20,5]"), e.getMessage());
    float[] expected = new float[y.length];
    java.util.Arrays.fill(expected, 7f);
    assertArrayEquals(expected, y, "nothing written");
    assertThrows(IllegalArgumentException.class, () -> Lstm.of(0, 1, 1, 1));
  }

}
