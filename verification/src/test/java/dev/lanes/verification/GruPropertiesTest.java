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

import dev.lanes.kernels.Gru;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.reference.GruReference;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * The GRU, checked as {@link LstmPropertiesTest} checks the LSTM: the reference's backward
 * against central differences; the kernel's forward step by step from its own previous state;
 * its backward against the reference backward from the kernel's own states, within a
 * running-error bound ({@code u = 2^-24}).
 */
class GruPropertiesTest {

  /** A random GRU problem; weights scaled by 1/sqrt(H), as PyTorch initializes them. */
  record Problem(int steps, int batch, int input, int hidden, float[] x, float[] wIh, float[] wHh, float[] bIh,
      float[] bHh, float[] h0, float[] dy, float[] dhT) {
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
      return new Problem(t, b, in, h, values(r, t * b * in, 2), values(r, 3 * h * in, k), values(r, 3 * h * h, k),
          values(r, 3 * h, k), values(r, 3 * h, k), r.nextBoolean() ? values(r, b * h, 1) : null,
          values(r, t * b * h, 1), r.nextBoolean() ? values(r, b * h, 1) : null);
    }
  }

  private static double sumAbs(double[] v) {
    double s = 0;
    for (double x : v) {
      s += Math.abs(x);
    }
    return s;
  }

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
      double[] dy = Doubles.of(p.dy());
      double[] dhT = p.dhT() == null ? new double[b * h] : Doubles.of(p.dhT());
      GruReference.States s = GruReference.forward(t, b, in, h, x, wIh, wHh, bIh, bHh, h0);
      GruReference.Gradients grads = GruReference.backward(t, b, in, h, x, wIh, wHh, h0, s, dy, dhT, false);
      double[] upstream = concat(dy, dhT);
      java.util.function.Function<double[][], double[]> outputs = in6 -> {
        GruReference.States o = GruReference.forward(t, b, in, h, in6[0], in6[1], in6[2], in6[3], in6[4], in6[5]);
        return concat(o.y(), java.util.Arrays.copyOfRange(o.y(), (t - 1) * b * h, t * b * h));
      };
      double[][] inputs = {x, wIh, wHh, bIh, bHh, h0};
      double[][] analytic = {grads.dx(), grads.dwIh(), grads.dwHh(), grads.dbIh(), grads.dbHh(), grads.dh0()};
      String[] names = {"dx", "dW_ih", "dW_hh", "db_ih", "db_hh", "dh0"};
      // As for the LSTM: chains of at most T steps of (I + H + 10) double operations on values of
      // size at most 4; third derivatives below 10 per unit of upstream.
      double quotient = NumericalGradient.roundoff(t * (in + h + 10), 4 * sumAbs(upstream)) + 1e-12 * 10 / 6 * sumAbs(upstream);
      for (int which = 0; which < inputs.length; which++) {
        int index = which;
        NumericalGradient.check("gru " + names[which], inputs[which], upstream, analytic[which], v -> {
          double[][] copy = inputs.clone();
          copy[index] = v;
          return outputs.apply(copy);
        }, quotient, 30);
      }
    });
  }

  /** A kernel run: outputs, a copy of the forward's workspace (gates, gh_n), and the gradients. */
  record Run(float[] y, float[] hT, float[] gates, float[] ghn, float[] dx, float[] dwIh, float[] dwHh, float[] dbIh,
      float[] dbHh, float[] dh0) {
    static Run of(Problem p, Parallelism parallelism) {
      Gru gru = Gru.of(p.steps(), p.batch(), p.input(), p.hidden());
      int t = p.steps();
      int b = p.batch();
      int h = p.hidden();
      int state = b * h;
      float[] y = new float[t * state];
      float[] hT = new float[state];
      MemorySegment ws = java.lang.foreign.Arena.ofAuto().allocate(4 * gru.workspaceFloats());
      MemorySegment shared = java.lang.foreign.Arena.ofAuto().allocate(4L * p.x().length);
      MemorySegment.copy(seg(p.x()), 0, shared, 0, 4L * p.x().length);
      gru.forward(shared, 0, seg(p.wIh()), 0, seg(p.wHh()), 0, seg(p.bIh()), 0, seg(p.bHh()), 0, seg(p.h0()), 0,
          seg(y), 0, seg(hT), 0, ws, 0, parallelism);
      float[] gates = ws.asSlice(0, 12L * t * state).toArray(ValueLayout.JAVA_FLOAT);
      float[] ghn = ws.asSlice(12L * t * state, 4L * t * state).toArray(ValueLayout.JAVA_FLOAT);
      float[] dx = new float[p.x().length];
      float[] dwIh = new float[p.wIh().length];
      float[] dwHh = new float[p.wHh().length];
      float[] dbIh = new float[3 * h];
      float[] dbHh = new float[3 * h];
      float[] dh0 = new float[state];
      gru.backward(shared, 0, seg(p.wIh()), 0, seg(p.wHh()), 0, seg(p.h0()), 0, seg(y), 0, seg(p.dy()), 0,
          seg(p.dhT()), 0, seg(dx), 0, seg(dwIh), 0, seg(dwHh), 0, seg(dbIh), 0, seg(dbHh), 0, seg(dh0), 0, ws, 0,
          parallelism);
      return new Run(y, hT, gates, ghn, dx, dwIh, dwHh, dbIh, dbHh, dh0);
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
      double[] x = Doubles.of(p.x());
      double[] wIh = Doubles.of(p.wIh());
      double[] wHh = Doubles.of(p.wHh());
      for (int step = 0; step < t; step++) {
        double[] hPrev = step == 0 ? Doubles.of(p.h0()) : Doubles.of(java.util.Arrays.copyOfRange(run.y(),
            (step - 1) * state, step * state));
        double[] gates = new double[b * 3 * h];
        double[] ghn = new double[state];
        double[] y = new double[state];
        GruReference.step(b, in, h, x, step * b * in, hPrev, 0, wIh, wHh, Doubles.of(p.bIh()), Doubles.of(p.bHh()),
            gates, 0, ghn, y, 0);
        for (int bb = 0; bb < b; bb++) {
          // gi and gh: a bias row plus a GEMM each, (k + 3) u of their terms' magnitudes.
          double[] egi = new double[3 * h];
          double[] egh = new double[3 * h];
          double[] gh = new double[3 * h];
          for (int r = 0; r < 3 * h; r++) {
            double mi = Math.abs(p.bIh()[r]);
            for (int k = 0; k < in; k++) {
              mi += Math.abs(x[(step * b + bb) * in + k] * wIh[r * in + k]);
            }
            double mh = Math.abs(p.bHh()[r]);
            gh[r] = p.bHh()[r];
            for (int k = 0; hPrev != null && k < h; k++) {
              mh += Math.abs(hPrev[bb * h + k] * wHh[r * h + k]);
              gh[r] += hPrev[bb * h + k] * wHh[r * h + k];
            }
            egi[r] = (in + 3) * U * mi;
            egh[r] = (h + 3) * U * mh;
          }
          for (int j = 0; j < h; j++) {
            int g0 = bb * 3 * h;
            double r = gates[g0 + j];
            double z = gates[g0 + h + j];
            double n = gates[g0 + 2 * h + j];
            // r, z: the sum gi + gh (one rounding), then the sigmoid's slope and its own 5u.
            double er = r * (1 - r) * (egi[j] + egh[j] + U * Math.abs(Math.log(r / (1 - r)))) + 5 * U * r + TINY;
            double ez = z * (1 - z) * (egi[h + j] + egh[h + j] + U * Math.abs(Math.log(z / (1 - z)))) + 5 * U * z + TINY;
            // n: fma(r, gh_n, gi_n) carries |gh_n| er + r egh_n + egi_n and one rounding; tanh 6u.
            double pre = Math.abs(gh[2 * h + j] * r) + Math.abs(egi[2 * h + j]);
            double en = (1 - n * n) * (Math.abs(gh[2 * h + j]) * er + r * egh[2 * h + j] + egi[2 * h + j]
                + U * (pre + Math.abs(atanh(n)))) + 6 * U * Math.abs(n);
            close("r", seed, step, j, run.gates()[(step * b + bb) * 3 * h + j], r, er);
            close("z", seed, step, j, run.gates()[(step * b + bb) * 3 * h + h + j], z, ez);
            close("n", seed, step, j, run.gates()[(step * b + bb) * 3 * h + 2 * h + j], n, en);
            close("gh_n", seed, step, j, run.ghn()[step * state + bb * h + j], ghn[bb * h + j], egh[2 * h + j]);
            double hp = hPrev == null ? 0 : hPrev[bb * h + j];
            // h = fma(z, h_prev - n, n): the subtraction and the fma round once each.
            double eh = Math.abs(hp - n) * ez + (1 + z) * en + U * (z * Math.abs(hp - n) + Math.abs(y[bb * h + j]));
            close("h", seed, step, j, run.y()[step * state + bb * h + j], y[bb * h + j], eh);
          }
        }
      }
    });
  }

  private static double atanh(double v) {
    return 0.5 * Math.log((1 + v) / (1 - v));
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
      GruReference.Gradients ref = referenceBackward(p, run, false);
      GruReference.Gradients mag = referenceBackward(p, run, true);
      // As for the LSTM (see LstmPropertiesTest): per step the dh GEMM (a reduction over 3H onto the
      // direct path: 3H + 3H/256 + 4 roundings), the dy add and the fused passes (12); then a final
      // reduction over T B or 3H.
      double k = backwardRoundings(t, b, h);
      compare("dx", seed, run.dx(), ref.dx(), mag.dx(), k);
      compare("dW_ih", seed, run.dwIh(), ref.dwIh(), mag.dwIh(), k);
      compare("dW_hh", seed, run.dwHh(), ref.dwHh(), mag.dwHh(), k);
      compare("db_ih", seed, run.dbIh(), ref.dbIh(), mag.dbIh(), k);
      compare("db_hh", seed, run.dbHh(), ref.dbHh(), mag.dbHh(), k);
      compare("dh0", seed, run.dh0(), ref.dh0(), mag.dh0(), k);
    });
  }

  /**
   * Truncated BPTT: two chunks with the state handed over (hT to h0 forward, dh0 to dhT backward)
   * are the whole sequence; bitwise, and within the whole run's bound plus one add for the weight
   * gradients, for the reasons given in {@link LstmPropertiesTest}'s twin of this property.
   */
  @Test
  void twoChunksAreTheWholeSequence() {
    Properties.qt(60).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 2, 6, 5, 20, 40);
      int t = p.steps();
      int first = 1 + (int) Math.floorMod(seed, (long) t - 1);
      Run whole = Run.of(p, Parallelism.sequential());
      Run forwardOne = Run.of(chunk(p, 0, first, p.h0(), null), Parallelism.sequential());
      Run runTwo = Run.of(chunk(p, first, t, forwardOne.hT(), p.dhT()), Parallelism.sequential());
      Run runOne = Run.of(chunk(p, 0, first, p.h0(), runTwo.dh0()), Parallelism.sequential());
      String split = " (chunks of " + first + " and " + (t - first) + " steps, case seed " + seed + ")";
      assertArrayEquals(whole.y(), LstmPropertiesTest.floats(runOne.y(), runTwo.y()), "y" + split);
      assertArrayEquals(whole.hT(), runTwo.hT(), "hT" + split);
      assertArrayEquals(whole.dx(), LstmPropertiesTest.floats(runOne.dx(), runTwo.dx()), "dx" + split);
      assertArrayEquals(whole.dh0(), runOne.dh0(), "dh0" + split);

      int b = p.batch();
      int in = p.input();
      int h = p.hidden();
      GruReference.Gradients ref = referenceBackward(p, whole, false);
      GruReference.Gradients mag = referenceBackward(p, whole, true);
      double k = backwardRoundings(t, b, h) + 1; // plus the add of the two chunks' sums
      compare("dW_ih" + split, seed, LstmPropertiesTest.sum(runOne.dwIh(), runTwo.dwIh()), ref.dwIh(), mag.dwIh(), k);
      compare("dW_hh" + split, seed, LstmPropertiesTest.sum(runOne.dwHh(), runTwo.dwHh()), ref.dwHh(), mag.dwHh(), k);
      compare("db_hh" + split, seed, LstmPropertiesTest.sum(runOne.dbHh(), runTwo.dbHh()), ref.dbHh(), mag.dbHh(), k);
    });
  }

  /** K of backwardMatchesTheReferenceFromTheSameStates' bound (derived there). */
  private static double backwardRoundings(int t, int b, int h) {
    return t * (3.0 * h + 3.0 * h / 256 + 17) + t * b + t * b / 256.0 + 3 * h + 4;
  }

  /** The reference backward (or its magnitude run) from a kernel run's own forward states. */
  private static GruReference.Gradients referenceBackward(Problem p, Run run, boolean magnitude) {
    GruReference.States states = new GruReference.States(Doubles.of(run.gates()), Doubles.of(run.ghn()),
        Doubles.of(run.y()));
    return GruReference.backward(p.steps(), p.batch(), p.input(), p.hidden(), Doubles.of(p.x()), Doubles.of(p.wIh()),
        Doubles.of(p.wHh()), Doubles.of(p.h0()), states, Doubles.of(p.dy()), Doubles.of(p.dhT()), magnitude);
  }

  /** Steps [from, to) of p, starting from h0, with dhT flowing in at the end. */
  private static Problem chunk(Problem p, int from, int to, float[] h0, float[] dhT) {
    int rows = p.batch();
    return new Problem(to - from, rows, p.input(), p.hidden(),
        java.util.Arrays.copyOfRange(p.x(), from * rows * p.input(), to * rows * p.input()), p.wIh(), p.wHh(), p.bIh(),
        p.bHh(), h0, java.util.Arrays.copyOfRange(p.dy(), from * rows * p.hidden(), to * rows * p.hidden()), dhT);
  }

  /**
   * Two threads give one thread's bits. The sizes make the kernel cut the batch between the threads
   * (it does from 3 x B x H = 32768 gate floats per step, two parts of at least 16384 each), so
   * each thread runs the recurrence, step GEMMs included, over its own rows.
   */
  @Test
  void resultsDoNotDependOnTheThreadCount() {
    Properties.qt(20).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      Problem p = Problem.random(seed, 1, 4, 44, 56, 40, 250, 300);
      Run one = Run.of(p, Parallelism.sequential());
      Run two = Run.of(p, Parallelism.threads(2));
      assertArrayEquals(one.y(), two.y(), "y on 2 threads");
      assertArrayEquals(one.hT(), two.hT(), "hT on 2 threads");
      assertArrayEquals(one.dx(), two.dx(), "dx on 2 threads");
      assertArrayEquals(one.dwIh(), two.dwIh(), "dwIh on 2 threads");
      assertArrayEquals(one.dwHh(), two.dwHh(), "dwHh on 2 threads");
      assertArrayEquals(one.dbIh(), two.dbIh(), "dbIh on 2 threads");
      assertArrayEquals(one.dbHh(), two.dbHh(), "dbHh on 2 threads");
      assertArrayEquals(one.dh0(), two.dh0(), "dh0 on 2 threads");
    });
  }

  @Test
  void badBuffersAreRejectedBeforeAnythingIsWritten() {
    Gru gru = Gru.of(2, 3, 4, 5);
    float[] y = new float[2 * 3 * 5];
    java.util.Arrays.fill(y, 7f);
    MemorySegment ws = MemorySegment.ofArray(new float[(int) gru.workspaceFloats()]);
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> gru.forward(
        seg(new float[2 * 3 * 4]), 0, seg(new float[15 * 4]), 0, seg(new float[15 * 4]), 0, null, 0, null, 0, null, 0,
        seg(y), 0, null, 0, ws, 0, Parallelism.sequential()));
    assertTrue(e.getMessage().contains("W_hh [3H,H] = [15,5]"), e.getMessage());
    float[] expected = new float[y.length];
    java.util.Arrays.fill(expected, 7f);
    assertArrayEquals(expected, y, "nothing written");
  }

}
