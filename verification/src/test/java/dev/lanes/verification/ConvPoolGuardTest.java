package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Conv2d;
import dev.lanes.kernels.GlobalPool;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Pool2d;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Bad input to convolution and pooling: each call must throw before writing anything, with a
 * message that names the argument and the numbers; the outputs stay byte-for-byte as they were.
 */
class ConvPoolGuardTest {
  private static final Conv2d CONV = Conv2d.builder(2, 4, 9, 7).filters(6).kernel(3, 2).padding(1, 0)
      .groups(2).build();

  static void assertRejected(Class<? extends Throwable> type, String mention, Executable call) {
    Throwable t = assertThrows(type, call);
    assertTrue(t.getMessage().contains(mention), "message '" + t.getMessage() + "' should mention '" + mention + "'");
  }

  @Test
  void invalidConvolutionsAreRejectedWithTheirNumbers() {
    assertRejected(IllegalArgumentException.class, "divisible by groups = 3",
        () -> Conv2d.builder(1, 4, 8, 8).filters(6).kernel(3, 3).groups(3).build());
    assertRejected(IllegalArgumentException.class, "output would be 0x",
        () -> Conv2d.builder(1, 1, 4, 4).filters(1).kernel(3, 3).dilation(2, 2).build());
    assertRejected(IllegalArgumentException.class, "strideH = 0",
        () -> Conv2d.builder(1, 1, 4, 4).filters(1).kernel(3, 3).stride(0, 1).build());
    assertRejected(IllegalArgumentException.class, "padW = -1",
        () -> Conv2d.builder(1, 1, 4, 4).filters(1).kernel(3, 3).padding(0, -1).build());
    assertRejected(IllegalArgumentException.class, "batch = 0",
        () -> Conv2d.builder(0, 1, 4, 4).filters(1).kernel(3, 3).build());
    assertRejected(IllegalArgumentException.class, "filters and kernel must be set",
        () -> Conv2d.builder(1, 1, 4, 4).build());
  }

  @Test
  void badBuffersLeaveTheOutputsUntouched() {
    try (Arena arena = Arena.ofShared()) {
      MemorySegment x = filled(arena, CONV.inputFloats(), 1f);
      MemorySegment w = filled(arena, CONV.weightFloats(), 1f);
      MemorySegment b = filled(arena, CONV.filters(), 1f);
      MemorySegment y = filled(arena, CONV.outputFloats(), 7f);
      MemorySegment dx = filled(arena, CONV.inputFloats(), 7f);
      MemorySegment dw = filled(arena, CONV.weightFloats(), 7f);
      Parallelism p = Parallelism.threads(2);
      float[] yBefore = y.toArray(ValueLayout.JAVA_FLOAT);
      float[] dxBefore = dx.toArray(ValueLayout.JAVA_FLOAT);
      float[] dwBefore = dw.toArray(ValueLayout.JAVA_FLOAT);
      MemorySegment shortX = x.asSlice(0, 4 * (CONV.inputFloats() - 1));
      MemorySegment smallWork = arena.allocate(4 * (CONV.workspaceFloats(2) - 1));

      assertRejected(IndexOutOfBoundsException.class, "x [N,C,H,W] = [2,4,9,7] needs 504 floats",
          () -> CONV.forward(shortX, 0, w, 0, b, 0, y, 0, null, p));
      assertRejected(IndexOutOfBoundsException.class, "w [K,C/groups,R,S] = [6,2,3,2]",
          () -> CONV.forward(x, 0, w, 1, b, 0, y, 0, null, p));
      assertRejected(IndexOutOfBoundsException.class, "bias [K] = [6]",
          () -> CONV.forward(x, 0, w, 0, b, 2, y, 0, null, p));
      assertRejected(IndexOutOfBoundsException.class, "y [N,K,Hout,Wout] = [2,6,9,6]",
          () -> CONV.forward(x, 0, w, 0, b, 0, y, 3, null, p));
      assertRejected(IllegalArgumentException.class, "workspace holds",
          () -> CONV.forward(x, 0, w, 0, b, 0, y, 0, smallWork, p));
      assertRejected(IllegalArgumentException.class, "y is a read-only segment",
          () -> CONV.forward(x, 0, w, 0, b, 0, y.asReadOnly(), 0, null, p));
      assertRejected(IllegalArgumentException.class, "x must not be null",
          () -> CONV.forward(null, 0, w, 0, b, 0, y, 0, null, p));
      assertRejected(IndexOutOfBoundsException.class, "dx offset = -1",
          () -> CONV.backwardData(y, 0, w, 0, dx, -1, null, p));
      assertRejected(IndexOutOfBoundsException.class, "dy [N,K,Hout,Wout]",
          () -> CONV.backwardWeights(x, 0, y.asSlice(8), 0, dw, 0, null, p));
      Arena closed = Arena.ofConfined();
      MemorySegment gone = closed.allocate(4 * CONV.inputFloats());
      closed.close();
      assertRejected(IllegalArgumentException.class, "already closed",
          () -> CONV.backwardWeights(gone, 0, y, 0, dw, 0, null, p));

      assertArrayEquals(yBefore, y.toArray(ValueLayout.JAVA_FLOAT));
      assertArrayEquals(dxBefore, dx.toArray(ValueLayout.JAVA_FLOAT));
      assertArrayEquals(dwBefore, dw.toArray(ValueLayout.JAVA_FLOAT));
    }
  }

  @Test
  void badPoolingIsRejectedBeforeAnythingIsWritten() {
    assertRejected(IllegalArgumentException.class, "at most half the kernel",
        () -> Pool2d.builder(1, 1, 8, 8).kernel(2, 2).padding(2, 0).build());
    assertRejected(IllegalArgumentException.class, "smaller than the kernel",
        () -> Pool2d.builder(1, 1, 2, 8).kernel(4, 2).build());
    Pool2d pool = Pool2d.builder(2, 3, 8, 8).kernel(2, 2).build();
    float[] x = new float[(int) pool.inputFloats()];
    float[] y = new float[(int) pool.outputFloats()];
    Arrays.fill(y, 7f);
    int[] argmax = new int[y.length];
    argmax[5] = 64; // outside its 8x8 plane
    float[] dx = new float[x.length];
    Arrays.fill(dx, 7f);
    assertRejected(IndexOutOfBoundsException.class, "y [N,C,Hout,Wout] = [2,3,4,4]",
        () -> pool.maxForward(x, 0, y, 1, new int[y.length], 0));
    assertRejected(IndexOutOfBoundsException.class, "argmax[5] = 64 is outside its plane",
        () -> pool.maxBackward(y, 0, argmax, 0, dx, 0));
    float[] yCopy = y.clone();
    assertRejected(IndexOutOfBoundsException.class, "x [N,C,P] = [2,3,65]",
        () -> GlobalPool.avgForward(2, 3, 65, MemorySegment.ofArray(x), 0, MemorySegment.ofArray(y), 0));
    assertArrayEquals(yCopy, y);
    float[] sevens = new float[dx.length];
    Arrays.fill(sevens, 7f);
    assertArrayEquals(sevens, dx);
  }

  private static MemorySegment filled(Arena arena, long floats, float value) {
    MemorySegment s = arena.allocate(4 * floats);
    for (long i = 0; i < floats; i++) {
      s.setAtIndex(ValueLayout.JAVA_FLOAT, i, value);
    }
    return s;
  }
}
