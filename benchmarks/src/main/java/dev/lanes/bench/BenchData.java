package dev.lanes.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Off-heap benchmark operands: 64-byte aligned, filled from a fixed seed. */
final class BenchData {
  private BenchData() {}

  /** {@code floats} uniform values in [-1, 1). */
  static MemorySegment uniform(Arena arena, long floats, long seed) {
    MemorySegment s = arena.allocate(4 * Math.max(floats, 1), 64);
    SplittableRandom random = new SplittableRandom(seed);
    for (long i = 0; i < floats; i++) {
      s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextDouble() * 2 - 1));
    }
    return s;
  }

  /** {@code floats} zeros. */
  static MemorySegment zeros(Arena arena, long floats) {
    return arena.allocate(4 * Math.max(floats, 1), 64);
  }
}
