package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * Embedding lookup: {@code y[r, :] = W[ids[r], :]} for {@code count} int32 ids into a row-major
 * table {@code W [vocab, dim]}, giving {@code y [count, dim]}. The backward scatter-adds each
 * {@code dy[r, :]} into {@code dW[ids[r], :]}: repeated ids accumulate, rows never looked up get
 * 0 (dW is overwritten, not accumulated across calls). Every id is checked to lie in
 * {@code [0, vocab)} before anything is written.
 */
public final class Embedding {
  private Embedding() {}

  public static void forward(int count, int vocab, int dim, MemorySegment ids, long idsOffset, MemorySegment table,
      long tableOffset, MemorySegment y, long yOffset) {
    checkIds(count, vocab, dim, ids, idsOffset);
    Checks.readable(table, "table");
    Checks.tensor("table", "[vocab,dim]", vocab, dim, -1, -1, tableOffset, Checks.floats(table));
    Checks.writable(y, "y");
    Checks.tensor("y", "[count,dim]", count, dim, -1, -1, yOffset, Checks.floats(y));
    for (long r = 0; r < count; r++) {
      long id = ids.get(JAVA_INT_UNALIGNED, 4 * (idsOffset + r));
      SegmentLoops.copy(table, 4 * (tableOffset + id * dim), y, 4 * (yOffset + r * dim), dim);
    }
  }

  public static void backward(int count, int vocab, int dim, MemorySegment ids, long idsOffset, MemorySegment dy,
      long dyOffset, MemorySegment dtable, long dtableOffset) {
    checkIds(count, vocab, dim, ids, idsOffset);
    Checks.readable(dy, "dy");
    Checks.tensor("dy", "[count,dim]", count, dim, -1, -1, dyOffset, Checks.floats(dy));
    Checks.writable(dtable, "dtable");
    Checks.tensor("dtable", "[vocab,dim]", vocab, dim, -1, -1, dtableOffset, Checks.floats(dtable));
    for (long v = 0; v < vocab; v++) {
      SegmentLoops.fill(dtable, 4 * (dtableOffset + v * dim), dim, 0f);
    }
    for (long r = 0; r < count; r++) {
      long id = ids.get(JAVA_INT_UNALIGNED, 4 * (idsOffset + r));
      SegmentLoops.addInto(dy, 4 * (dyOffset + r * dim), dtable, 4 * (dtableOffset + id * dim), dim);
    }
  }

  private static void checkIds(int count, int vocab, int dim, MemorySegment ids, long idsOffset) {
    Checks.nonNegative(count, "count");
    Checks.positive(vocab, "vocab");
    Checks.positive(dim, "dim");
    Checks.readable(ids, "ids");
    if (idsOffset < 0 || idsOffset > ids.byteSize() / 4 - count) {
      throw new IndexOutOfBoundsException("ids: " + count + " int32 ids at offset " + idsOffset
          + " do not fit in its " + ids.byteSize() / 4 + " ints");
    }
    for (long r = 0; r < count; r++) {
      int id = ids.get(JAVA_INT_UNALIGNED, 4 * (idsOffset + r));
      if (id < 0 || id >= vocab) {
        throw new IndexOutOfBoundsException("ids[" + r + "] = " + id + " is not a row of the " + vocab + " x " + dim
            + " table");
      }
    }
  }
}
