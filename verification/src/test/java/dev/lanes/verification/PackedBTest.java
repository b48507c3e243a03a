package dev.lanes.verification;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.lanes.kernels.Gemm;
import dev.lanes.kernels.PackedB;
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
 * A product with B packed ahead ({@link PackedB}) must give bitwise the result of the plain GEMM
 * with the same B: the packed layout only changes where the micro-kernel finds each KC-row chunk
 * of a panel, not the order of any sum. Equality, not a bound, is therefore the property; the plain
 * GEMM's accuracy against the double reference is {@link GemmPropertiesTest}'s.
 */
class PackedBTest {
  /** One PackedB for every case, so that each case also packs over what the previous one left. */
  private static final PackedB SHARED = PackedB.allocate(420, 420);

  @Test
  void packedProductIsBitwiseThePlainProduct() {
    AtomicInteger cases = new AtomicInteger();
    Gen<Integer> threads = SourceDSL.integers().between(1, 3);
    // k up to 300 spans two KC chunks when KC = 256 (and more at the narrower widths' KC).
    Properties.qt(300).forAll(GemmCase.cases(300), threads).checkAssert((c, t) -> {
      cases.incrementAndGet();
      assertSame(c, Parallelism.threads(t));
    });
    assertTrue(cases.get() >= 300, "only " + cases.get() + " cases ran");
  }

  @Test
  void packedProductIsBitwiseThePlainProductWhenCallsSplit() {
    // Large enough that calls split between threads (see GemmPropertiesTest's thread property).
    Properties.qt(20).forAll(GemmCase.cases(160, 420)).checkAssert(c -> assertSame(c, Parallelism.threads(2)));
  }

  private static void assertSame(GemmCase c, Parallelism parallelism) {
    float[] plain = GemmPropertiesTest.run(c, true, parallelism);
    try (Arena arena = Arena.ofShared()) {
      MemorySegment a = GemmPropertiesTest.copy(arena, c.a());
      MemorySegment b = GemmPropertiesTest.copy(arena, c.b());
      MemorySegment out = GemmPropertiesTest.copy(arena, c.c());
      SHARED.pack(c.transB(), c.k(), c.n(), b, c.offB(), c.ldb());
      Gemm.sgemm(c.transA(), c.m(), c.alpha(), a, c.offA(), c.lda(), SHARED, c.beta(), out, c.offC(), c.ldc(),
          parallelism);
      assertArrayEquals(plain, out.toArray(ValueLayout.JAVA_FLOAT), "packed B changed the result of " + c);
    }
  }

  @Test
  void badArgumentsThrowNamingThemAndWriteNothing() {
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment b = arena.allocate(4L * 20 * 30);
      MemorySegment a = arena.allocate(4L * 10 * 20);
      MemorySegment c = arena.allocate(4L * 10 * 30);
      c.fill((byte) 7);
      byte[] before = c.toArray(ValueLayout.JAVA_BYTE);

      PackedB empty = PackedB.allocate(20, 30);
      assertMessage(IllegalArgumentException.class, "pack first",
          () -> Gemm.sgemm(Transpose.NONE, 10, 1f, a, 0, 20, empty, 0f, c, 0, 30, Parallelism.sequential()));

      PackedB small = PackedB.allocate(8, 8);
      assertMessage(IllegalArgumentException.class, "has room for",
          () -> small.pack(Transpose.NONE, 20, 30, b, 0, 30));

      PackedB packed = PackedB.allocate(20, 30);
      assertMessage(IllegalArgumentException.class, "ldb", () -> packed.pack(Transpose.NONE, 20, 30, b, 0, 29));
      assertMessage(IndexOutOfBoundsException.class, "b:", () -> packed.pack(Transpose.NONE, 20, 30, b, 1, 30));
      packed.pack(Transpose.NONE, 20, 30, b, 0, 30);
      assertMessage(IllegalArgumentException.class, "lda",
          () -> Gemm.sgemm(Transpose.NONE, 10, 1f, a, 0, 19, packed, 0f, c, 0, 30, Parallelism.sequential()));
      assertMessage(IndexOutOfBoundsException.class, "c:",
          () -> Gemm.sgemm(Transpose.NONE, 10, 1f, a, 0, 20, packed, 0f, c, 1, 30, Parallelism.sequential()));
      assertMessage(IndexOutOfBoundsException.class, "a:",
          () -> Gemm.sgemm(Transpose.NONE, 10, 1f, a, 1, 20, packed, 0f, c, 0, 30, Parallelism.sequential()));
      assertArrayEquals(before, c.toArray(ValueLayout.JAVA_BYTE), "a rejected call wrote into C");
    }
  }

  private static void assertMessage(Class<? extends RuntimeException> type, String mention, Runnable call) {
    RuntimeException e = assertThrows(type, call::run);
    assertTrue(e.getMessage().contains(mention), "message does not mention " + mention + ": " + e.getMessage());
  }
}
