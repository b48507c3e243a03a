package dev.lanes.kernels;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * The native-memory fast path of the activation loops rests on one fact of the JDK:
 * every kind of arena hands out segments of the one class that {@link SegmentLoops#NATIVE} names.
 * If a JDK split that class, native calls would silently take the staged (copying) path, which
 * the bitwise heap-versus-native property cannot notice; this test would.
 */
class SegmentLoopsTest {
  @Test
  void everyArenaKindIsOnTheFastPath() {
    try (Arena confined = Arena.ofConfined(); Arena shared = Arena.ofShared()) {
      MemorySegment[] fromArenas = {confined.allocate(16), shared.allocate(16), Arena.ofAuto().allocate(16),
          Arena.global().allocate(16)};
      for (MemorySegment s : fromArenas) {
        assertSame(SegmentLoops.NATIVE, s.getClass(), "segment from " + s);
        assertTrue(SegmentLoops.allNative(s, s, s));
      }
    }
  }

  @Test
  void heapSegmentsAreNot() {
    MemorySegment heap = MemorySegment.ofArray(new float[] {1f, 2f, 3f, 4f});
    try (Arena arena = Arena.ofConfined()) {
      MemorySegment plain = arena.allocate(16);
      assertFalse(SegmentLoops.allNative(plain, heap));
      assertFalse(SegmentLoops.allNative(plain, plain, heap));
      assertTrue(SegmentLoops.allNative(plain, plain));
    }
  }
}
