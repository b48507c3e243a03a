package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.Parallelism;
import dev.lanes.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * Invalid GEMM calls: each case takes a valid call and breaks exactly one argument. Every such call
 * must throw IllegalArgumentException or IndexOutOfBoundsException naming the argument, and leave
 * C, and guard regions of {@value #GUARD} floats on both sides of it, byte-for-byte unchanged.
 */
class GemmGuardRegionTest {
  private static final int GUARD = 64;

  /** One way to break a call. */
  enum Breakage {
    NEGATIVE_M("m"), NEGATIVE_N("n"), NEGATIVE_K("k"),
    LDA_TOO_SMALL("lda"), LDB_TOO_SMALL("ldb"), LDC_TOO_SMALL("ldc"),
    NEGATIVE_OFFSET_A("a"), NEGATIVE_OFFSET_C("c"),
    A_PAST_END("a"), B_PAST_END("b"), C_PAST_END("c"),
    NULL_A("a"), NULL_B("b"), NULL_C("c"), NULL_TRANS_A("transA"), NULL_TRANS_B("transB"),
    NULL_PARALLELISM("parallelism"),
    READ_ONLY_C("c"), CLOSED_A("a"), CLOSED_B("b");

    final String argument;

    Breakage(String argument) {
      this.argument = argument;
    }

    boolean segmentsOnly() {
      return this == READ_ONLY_C || this == CLOSED_A || this == CLOSED_B;
    }
  }

  @Test
  void everyInvalidCallThrowsAndWritesNothing() {
    Gen<Breakage> breakages = SourceDSL.arbitrary().enumValues(Breakage.class);
    Gen<Boolean> onSegments = SourceDSL.booleans().all();
    AtomicInteger cases = new AtomicInteger();
    Properties.qt(500).forAll(GemmCase.cases(40), breakages, onSegments)
        .checkAssert((c, breakage, segments) -> {
          cases.incrementAndGet();
          check(c, breakage, segments || breakage.segmentsOnly());
        });
    assertTrue(cases.get() >= 500, "only " + cases.get() + " cases ran");
  }

  /** The arguments of one call, mutable so that one of them can be broken. */
  private static final class Call {
    Transpose transA;
    Transpose transB;
    int m;
    int n;
    int k;
    int lda;
    int ldb;
    int ldc;
    int offA;
    int offB;
    int offC;
    int aLength;
    int bLength;
    int cLength;
    boolean nullA;
    boolean nullB;
    boolean nullC;
    boolean nullParallelism;
    boolean readOnlyC;
    boolean closedA;
    boolean closedB;
  }

  private static void check(GemmCase c, Breakage breakage, boolean segments) {
    Call call = new Call();
    call.transA = c.transA();
    call.transB = c.transB();
    call.m = c.m();
    call.n = c.n();
    call.k = c.k();
    call.lda = c.lda();
    call.ldb = c.ldb();
    call.ldc = c.ldc();
    call.offA = c.offA();
    call.offB = c.offB();
    call.offC = c.offC();
    call.aLength = c.aLength();
    call.bLength = c.bLength();
    call.cLength = c.cLength();
    breakInto(call, c, breakage);

    float[] a = java.util.Arrays.copyOf(c.a(), Math.max(0, call.aLength));
    float[] b = java.util.Arrays.copyOf(c.b(), Math.max(0, call.bLength));
    float[] cInit = c.c();
    // Backing store of C with guards: [GUARD floats][C][GUARD floats], all with known bits.
    float[] backing = new float[GUARD + call.cLength + GUARD];
    for (int i = 0; i < backing.length; i++) {
      backing[i] = i >= GUARD && i - GUARD < cInit.length ? cInit[i - GUARD] : Float.intBitsToFloat(0x7fc0_0000 | i);
    }
    float[] expected = backing.clone();
    float[] after;
    RuntimeException thrown;
    if (segments) {
      try (Arena arena = Arena.ofConfined()) {
        Arena aArena = call.closedA ? Arena.ofConfined() : arena;
        Arena bArena = call.closedB ? Arena.ofConfined() : arena;
        MemorySegment as = GemmPropertiesTest.copy(aArena, a);
        MemorySegment bs = GemmPropertiesTest.copy(bArena, b);
        MemorySegment whole = GemmPropertiesTest.copy(arena, backing);
        MemorySegment slice = whole.asSlice((long) GUARD * Float.BYTES, (long) call.cLength * Float.BYTES);
        MemorySegment cs = call.readOnlyC ? slice.asReadOnly() : slice;
        if (call.closedA) {
          aArena.close();
        }
        if (call.closedB) {
          bArena.close();
        }
        thrown = invoke(() -> Gemm.sgemm(call.transA, call.transB, call.m, call.n, call.k, c.alpha(),
            call.nullA ? null : as, call.offA, call.lda, call.nullB ? null : bs, call.offB, call.ldb,
            c.beta(), call.nullC ? null : cs, call.offC, call.ldc,
            call.nullParallelism ? null : Parallelism.threads(2)));
        after = whole.toArray(ValueLayout.JAVA_FLOAT);
      }
    } else {
      float[] cArray = java.util.Arrays.copyOfRange(backing, GUARD, GUARD + call.cLength);
      thrown = invoke(() -> Gemm.sgemm(call.transA, call.transB, call.m, call.n, call.k, c.alpha(),
          call.nullA ? null : a, call.offA, call.lda, call.nullB ? null : b, call.offB, call.ldb,
          c.beta(), call.nullC ? null : cArray, call.offC, call.ldc,
          call.nullParallelism ? null : Parallelism.threads(2)));
      after = backing.clone();
      System.arraycopy(cArray, 0, after, GUARD, cArray.length);
    }
    String where = breakage + " on " + (segments ? "segments" : "arrays") + " in " + c;
    if (thrown == null) {
      throw new AssertionError("no exception for " + where);
    }
    if (!(thrown instanceof IllegalArgumentException || thrown instanceof IndexOutOfBoundsException)) {
      throw new AssertionError("wrong exception type for " + where, thrown);
    }
    String message = String.valueOf(thrown.getMessage());
    if (!message.startsWith(breakage.argument + " ") && !message.startsWith(breakage.argument + ":")) {
      throw new AssertionError("message does not name '" + breakage.argument + "' for " + where + ": " + message);
    }
    assertArrayEquals(bits(expected), bits(after), "C or its guards changed for " + where);
  }

  /** Rewrites the call so that exactly this one argument is invalid. */
  private static void breakInto(Call call, GemmCase c, Breakage breakage) {
    switch (breakage) {
      case NEGATIVE_M -> call.m = -1 - c.m();
      case NEGATIVE_N -> call.n = -1 - c.n();
      case NEGATIVE_K -> call.k = -1 - c.k();
      case LDA_TOO_SMALL -> call.lda = Math.max(1, c.aCols()) - 1;
      case LDB_TOO_SMALL -> call.ldb = Math.max(1, c.bCols()) - 1;
      case LDC_TOO_SMALL -> call.ldc = Math.max(1, c.n()) - 1;
      case NEGATIVE_OFFSET_A -> call.offA = -1 - c.offA();
      case NEGATIVE_OFFSET_C -> call.offC = -1 - c.offC();
      case A_PAST_END -> pastEnd(call, 'a', c.aRows(), c.aCols(), c.lda());
      case B_PAST_END -> pastEnd(call, 'b', c.bRows(), c.bCols(), c.ldb());
      case C_PAST_END -> pastEnd(call, 'c', c.m(), c.n(), c.ldc());
      case NULL_A -> call.nullA = true;
      case NULL_B -> call.nullB = true;
      case NULL_C -> call.nullC = true;
      case NULL_TRANS_A -> call.transA = null;
      case NULL_TRANS_B -> call.transB = null;
      case NULL_PARALLELISM -> call.nullParallelism = true;
      case READ_ONLY_C -> call.readOnlyC = true;
      case CLOSED_A -> call.closedA = true;
      case CLOSED_B -> call.closedB = true;
    }
  }

  /** A buffer one float too short for its matrix, or, for an empty matrix, an offset past the end. */
  private static void pastEnd(Call call, char which, int rows, int cols, int ld) {
    int offset = which == 'a' ? call.offA : which == 'b' ? call.offB : call.offC;
    boolean empty = rows == 0 || cols == 0;
    int needed = empty ? 0 : offset + (rows - 1) * ld + cols;
    if (empty) {
      int length = which == 'a' ? call.aLength : which == 'b' ? call.bLength : call.cLength;
      int pastLength = length + 1;
      switch (which) {
        case 'a' -> call.offA = pastLength;
        case 'b' -> call.offB = pastLength;
        default -> call.offC = pastLength;
      }
      return;
    }
    switch (which) {
      case 'a' -> call.aLength = needed - 1;
      case 'b' -> call.bLength = needed - 1;
      default -> call.cLength = needed - 1;
    }
  }

  private static RuntimeException invoke(Runnable call) {
    try {
      call.run();
      return null;
    } catch (RuntimeException e) {
      return e;
    }
  }

  private static int[] bits(float[] x) {
    int[] y = new int[x.length];
    for (int i = 0; i < x.length; i++) {
      y[i] = Float.floatToRawIntBits(x[i]);
    }
    return y;
  }
}
