package dev.lanes.verification;

import static dev.lanes.verification.RecurrentCases.bidirectionalInputGradient;
import static dev.lanes.verification.RecurrentCases.bidirectionalOutput;
import static dev.lanes.verification.RecurrentCases.concat;
import static dev.lanes.verification.RecurrentCases.half;
import static dev.lanes.verification.RecurrentCases.part;
import static dev.lanes.verification.RecurrentCases.reverseTime;
import static dev.lanes.verification.RecurrentCases.seg;
import static dev.lanes.verification.RecurrentCases.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.BidirectionalGru;
import dev.lanes.kernels.Parallelism;
import dev.lanes.verification.GruPropertiesTest.Problem;
import dev.lanes.verification.GruPropertiesTest.Run;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.quicktheories.generators.SourceDSL;

/**
 * The bidirectional GRU against its definition (PyTorch's {@code bidirectional=True}), built here
 * from two unidirectional {@code Gru} runs, whose accuracy {@link GruPropertiesTest} checks:
 * direction 0 reads x; direction 1 reads x reversed in time, and its outputs are reversed back;
 * y is the per-step concatenation; dx is the sum of both directions' dx. The kernel computes the
 * same floats in the same order, so every output and gradient must match bitwise, on 1 and 2
 * threads.
 */
class BidirectionalGruTest {

  @Test
  void matchesTwoUnidirectionalRunsOneOverTheReversedSequence() {
    Properties.qt(80).forAll(SourceDSL.longs().all()).checkAssert(seed -> {
      SplittableRandom r = new SplittableRandom(seed);
      int t = 1 + r.nextInt(5);
      int b = 1 + r.nextInt(4);
      int in = 1 + r.nextInt(20);
      int h = 1 + r.nextInt(40);
      int state = b * h;
      double k = 1 / Math.sqrt(h);
      float[] x = values(r, t * b * in, 2);
      float[] wIh = values(r, 2 * 3 * h * in, k);
      float[] wHh = values(r, 2 * 3 * h * h, k);
      float[] bIh = values(r, 2 * 3 * h, k);
      float[] bHh = values(r, 2 * 3 * h, k);
      float[] h0 = r.nextBoolean() ? values(r, 2 * state, 1) : null;
      float[] dy = values(r, t * state * 2, 1);
      float[] dhT = r.nextBoolean() ? values(r, 2 * state, 1) : null;

      // The definition, from two unidirectional runs.
      Run[] runs = new Run[2];
      for (int d = 0; d < 2; d++) {
        float[] xd = d == 0 ? x : reverseTime(x, t, b * in);
        float[] dyd = half(dy, t * b, h, d);
        runs[d] = Run.of(new Problem(t, b, in, h, xd, part(wIh, d), part(wHh, d), part(bIh, d), part(bHh, d),
            part(h0, d), d == 0 ? dyd : reverseTime(dyd, t, state), part(dhT, d)), Parallelism.sequential());
      }
      float[] expectedY = bidirectionalOutput(runs[0].y(), runs[1].y(), t, b, h);
      float[] expectedDx = bidirectionalInputGradient(runs[0].dx(), runs[1].dx(), t, b * in);

      for (int threads = 1; threads <= 2; threads++) {
        BidirectionalGru gru = BidirectionalGru.of(t, b, in, h);
        MemorySegment ws = Arena.ofAuto().allocate(4 * gru.workspaceFloats());
        float[] y = new float[t * state * 2];
        float[] hT = new float[2 * state];
        Parallelism parallelism = Parallelism.threads(threads);
        gru.forward(seg(x), 0, seg(wIh), 0, seg(wHh), 0, seg(bIh), 0, seg(bHh), 0, seg(h0), 0, seg(y), 0, seg(hT), 0,
            ws, 0, parallelism);
        float[] dx = new float[x.length];
        float[] dwIh = new float[wIh.length];
        float[] dwHh = new float[wHh.length];
        float[] dbIh = new float[bIh.length];
        float[] dbHh = new float[bHh.length];
        float[] dh0 = new float[2 * state];
        gru.backward(seg(x), 0, seg(wIh), 0, seg(wHh), 0, seg(h0), 0, seg(dy), 0, seg(dhT), 0, seg(dx), 0, seg(dwIh), 0,
            seg(dwHh), 0, seg(dbIh), 0, seg(dbHh), 0, seg(dh0), 0, ws, 0, parallelism);

        String c = " (T=" + t + " B=" + b + " I=" + in + " H=" + h + ", " + threads + " threads, case seed " + seed
            + ")";
        assertArrayEquals(expectedY, y, "y" + c);
        assertArrayEquals(concat(runs[0].hT(), runs[1].hT()), hT, "hT" + c);
        assertArrayEquals(expectedDx, dx, "dx" + c);
        assertArrayEquals(concat(runs[0].dwIh(), runs[1].dwIh()), dwIh, "dW_ih" + c);
        assertArrayEquals(concat(runs[0].dwHh(), runs[1].dwHh()), dwHh, "dW_hh" + c);
        assertArrayEquals(concat(runs[0].dbIh(), runs[1].dbIh()), dbIh, "db_ih" + c);
        assertArrayEquals(concat(runs[0].dbHh(), runs[1].dbHh()), dbHh, "db_hh" + c);
        assertArrayEquals(concat(runs[0].dh0(), runs[1].dh0()), dh0, "dh0" + c);
      }
    });
  }

  @Test
  void aTooSmallWeightIsRejectedBeforeAnythingIsWritten() {
    BidirectionalGru gru = BidirectionalGru.of(2, 3, 4, 5);
    float[] y = new float[2 * 3 * 2 * 5];
    Arrays.fill(y, 7f);
    MemorySegment ws = MemorySegment.ofArray(new float[(int) gru.workspaceFloats()]);
    // W_hh for one direction only: [3H, H] = 75 floats, not [2, 3H, H] = 150.
    IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> gru.forward(
        seg(new float[2 * 3 * 4]), 0, seg(new float[2 * 15 * 4]), 0, seg(new float[15 * 5]), 0, null, 0, null, 0,
        null, 0, seg(y), 0, null, 0, ws, 0, Parallelism.sequential()));
    assertTrue(e.getMessage().startsWith("W_hh [2,3H,H] needs 150 floats"), e.getMessage());
    float[] sevens = new float[y.length];
    Arrays.fill(sevens, 7f);
    assertArrayEquals(sevens, y, "y written");
  }
}
