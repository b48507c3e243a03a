package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Argument validation shared by the kernels. Every message names the argument and the numbers,
 * and every check runs before a kernel reads or writes anything.
 */
final class Checks {
  /** A thread that never runs; a segment it may access is not confined to the caller. */
  private static final Thread ANY_OTHER_THREAD = new Thread(() -> {}, "lanes-accessibility-probe");

  private Checks() {}

  /**
   * Whether threads other than the caller may touch the segment (false for confined arenas); a
   * kernel runs on the calling thread alone when any of its segments is not.
   */
  static boolean shareable(MemorySegment segment) {
    return segment == null || segment.isAccessibleBy(ANY_OTHER_THREAD);
  }

  static <T> T notNull(T value, String name) {
    if (value == null) {
      throw new IllegalArgumentException(name + " must not be null");
    }
    return value;
  }

  static void nonNegative(long value, String name) {
    if (value < 0) {
      throw new IllegalArgumentException(name + " = " + value + " must be >= 0");
    }
  }

  /**
   * A row-major matrix of {@code rows x cols} needs {@code ld >= max(1, cols)}. The description of
   * the matrix ({@code what}, e.g. "A is stored k x m") is only assembled on failure, so a valid
   * call allocates nothing.
   */
  static void leadingDimension(int ld, String name, int cols, String what, int rows) {
    int required = Math.max(1, cols);
    if (ld < required) {
      throw new IllegalArgumentException(name + " = " + ld + " is smaller than required " + required
          + " (" + what + " " + rows + " x " + cols + ", row-major)");
    }
  }

  /**
   * Elements {@code [offset, offset + (rows-1)*ld + cols)} of a float buffer of {@code length}
   * elements must exist. An empty matrix touches nothing, so only its offset is checked.
   */
  static void extent(String name, long offset, int rows, int cols, int ld, long length) {
    if (offset < 0) {
      throw new IndexOutOfBoundsException(name + " offset = " + offset + " must be >= 0");
    }
    if (rows == 0 || cols == 0) {
      if (offset > length) {
        throw new IndexOutOfBoundsException(
            name + " offset = " + offset + " is past the end of its " + length + " floats");
      }
      return;
    }
    long end = offset + (long) (rows - 1) * ld + cols;
    if (end > length) {
      throw new IndexOutOfBoundsException(name + ": a " + rows + "x" + cols + " matrix with leading dimension "
          + ld + " at offset " + offset + " needs floats [" + offset + ", " + end + ") but only "
          + length + " exist");
    }
  }

  /**
   * A tensor of shape {@code layout = [d0, d1, d2, d3]} (unused trailing dimensions are -1), that
   * is the product of the dimensions in floats from {@code offset}, must fit in a buffer of
   * {@code length} floats. The message, naming the tensor, its layout and its shape, is only
   * assembled on failure, so a valid call allocates nothing.
   */
  static void tensor(String name, String layout, int d0, int d1, int d2, int d3, long offset, long length) {
    long count = (long) d0 * Math.max(d1, 1) * Math.max(d2, 1) * Math.max(d3, 1);
    if (offset < 0) {
      throw new IndexOutOfBoundsException(name + " offset = " + offset + " must be >= 0");
    }
    if (offset > length - count) {
      StringBuilder shape = new StringBuilder().append(d0);
      for (int d : new int[] {d1, d2, d3}) {
        if (d >= 0) {
          shape.append(',').append(d);
        }
      }
      throw new IndexOutOfBoundsException(name + " " + layout + " = [" + shape + "] needs " + count
          + " floats at offset " + offset + ", that is [" + offset + ", " + (offset + count)
          + "), but its buffer holds only " + length);
    }
  }

  /** A positive dimension or attribute: {@code value >= 1}. */
  static void positive(long value, String name) {
    if (value < 1) {
      throw new IllegalArgumentException(name + " = " + value + " must be >= 1");
    }
  }

  /** A segment the kernel will read: alive and accessible from the calling thread. */
  static void readable(MemorySegment segment, String name) {
    notNull(segment, name);
    if (!segment.scope().isAlive()) {
      throw new IllegalArgumentException(name + " is a segment whose arena is already closed");
    }
    if (!segment.isAccessibleBy(Thread.currentThread())) {
      throw new IllegalArgumentException(
          name + " is confined to another thread and cannot be accessed from " + Thread.currentThread().getName());
    }
  }

  /** A segment the kernel will write: readable and not read-only. */
  static void writable(MemorySegment segment, String name) {
    readable(segment, name);
    if (segment.isReadOnly()) {
      throw new IllegalArgumentException(name + " is a read-only segment");
    }
  }

  /** A segment the kernel will write ({@link #writable}) or only read ({@link #readable}). */
  static void accessible(MemorySegment segment, String name, boolean written) {
    if (written) {
      writable(segment, name);
    } else {
      readable(segment, name);
    }
  }

  /** A heap segment over an array argument of a {@code float[]} overload; null is rejected by name. */
  static MemorySegment array(float[] values, String name) {
    return MemorySegment.ofArray(notNull(values, name));
  }

  /** Length of a segment in whole floats. */
  static long floats(MemorySegment segment) {
    return segment.byteSize() / Float.BYTES;
  }
}
