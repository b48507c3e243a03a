package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Short vector loops over runs of floats in segments (fill, copy, add-into, strided gather), the
 * data movement of im2col, col2im and pooling; and the native-memory test that the activations'
 * loops start with ({@link #NATIVE}). All offsets are in bytes.
 *
 * <p>Runs here are tens of floats long, where {@link MemorySegment#copy} and
 * {@link MemorySegment#fill} cost more in per-call checks and slicing than the data movement;
 * these loops allocate nothing and keep one small vector method per job.
 */
final class SegmentLoops {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();

  /**
   * Zero, made once: a kernel that fills once per call (the GRU's zero row) runs that fill from
   * code C2 has not compiled, where a fresh broadcast is a heap object, 96 B per call (found
   * with JFR on a JVM without TLABs, where every allocation is an event).
   */
  private static final FloatVector ZERO = FloatVector.zero(SPECIES);

  private SegmentLoops() {}

  /**
   * The class of segments in native memory ({@code Arena} allocations), which the vector loops of
   * {@link Activation} test their segments against before their loops.
   *
   * <p>Why: C2 removes a vector loop's per-access checks (bounds, liveness, the segment's class)
   * only when it knows the segment's exact class. Otherwise a store's base may be a heap array,
   * which may alias the segment's own fields, so every iteration reloads and rechecks them: in
   * the softmax's exponential loop about 35 scalar instructions beside 25 vector ones (read in
   * the disassembly). After {@code if (x.getClass() != NATIVE) ...} C2 knows the class, and the
   * same loop came out clean and unrolled. The softmax itself kept its unguarded loops: in JMH,
   * old and new jars alternating, its guarded version was not faster (median 1.14x the time over
   * 11 pairs on a contended afternoon), while the activations' was (tanh forward 0.78-0.88).
   * Slicing the segment inside the loop's method did the same, but only while C2 chose to inline
   * {@code asSlice}; when it did not, each slice was a heap object and the loop got slower still.
   */
  static final Class<?> NATIVE = MemorySegment.NULL.getClass();

  /**
   * Whether a and b are plain native segments, the only kind the activations' vector loops accept
   * (see {@link #NATIVE}); callers stage others through native memory. Fixed arities rather than
   * varargs, whose array a call in a loop would allocate.
   */
  static boolean allNative(MemorySegment a, MemorySegment b) {
    return a.getClass() == NATIVE && b.getClass() == NATIVE;
  }

  /** {@link #allNative(MemorySegment, MemorySegment)} for three segments. */
  static boolean allNative(MemorySegment a, MemorySegment b, MemorySegment c) {
    return allNative(a, b) && c.getClass() == NATIVE;
  }

  /** The failure of a loop handed a segment its caller should have staged: a bug in Lanes. */
  static AssertionError notStaged() {
    return new AssertionError("a vector loop was handed a segment that is not plain native memory");
  }

  /**
   * {@code dst[0 .. n) = value}.
   *
   * <p>A value other than +0 goes through a plain loop, which C2 vectorizes by itself, rather than a
   * broadcast: inside the large compiled loop of a convolution over images (which fills each
   * output channel with its bias), C2 left the broadcast's intrinsic out of line, and every call
   * built its vector on the heap, 80 B per channel and image, 100 KB per LeNet forward (JMH,
   * JFR allocation samples after warm-up). The same loop in a small program never did.
   */
  static void fill(MemorySegment dst, long at, int n, float value) {
    if (Float.floatToRawIntBits(value) != 0) {
      for (int i = 0; i < n; i++) {
        dst.set(JAVA_FLOAT_UNALIGNED, at + 4L * i, value);
      }
      return;
    }
    if (n < LANES) {
      for (int i = 0; i < n; i++) {
        dst.set(JAVA_FLOAT_UNALIGNED, at + 4L * i, 0f);
      }
      return;
    }
    FloatVector v = ZERO;
    int i = 0;
    for (int whole = n - n % LANES; i < whole; i += LANES) {
      v.intoMemorySegment(dst, at + 4L * i, ORDER);
    }
    if (i < n) {
      // The last LANES floats again, overlapping: see copy.
      v.intoMemorySegment(dst, at + 4L * (n - LANES), ORDER);
    }
  }

  /**
   * {@code dst[0 .. n) = src[0 .. n)}; the runs must not overlap.
   *
   * <p>A ragged end is one more whole vector, the run's last LANES floats, rewriting some floats
   * with the values they already hold; runs shorter than a vector go float by float. Masked
   * stores, used before, are slow on AMD cores (VMASKMOVPS), and im2col, whose runs are output
   * rows, ended nearly every run with one: im2col took about 30% of a ResNet block's forward pass
   * (Zen 3, one thread).
   */
  static void copy(MemorySegment src, long from, MemorySegment dst, long to, int n) {
    if (n < LANES) {
      for (int i = 0; i < n; i++) {
        dst.set(JAVA_FLOAT_UNALIGNED, to + 4L * i, src.get(JAVA_FLOAT_UNALIGNED, from + 4L * i));
      }
      return;
    }
    int i = 0;
    for (int whole = n - n % LANES; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, src, from + 4L * i, ORDER).intoMemorySegment(dst, to + 4L * i, ORDER);
    }
    if (i < n) {
      long last = 4L * (n - LANES);
      FloatVector.fromMemorySegment(SPECIES, src, from + last, ORDER).intoMemorySegment(dst, to + last, ORDER);
    }
  }

  /** {@code dst[0 .. n) += src[0 .. n)}; the runs must not overlap. */
  static void addInto(MemorySegment src, long from, MemorySegment dst, long to, int n) {
    int i = 0;
    for (int whole = n - n % LANES; i < whole; i += LANES) {
      FloatVector.fromMemorySegment(SPECIES, src, from + 4L * i, ORDER)
          .add(FloatVector.fromMemorySegment(SPECIES, dst, to + 4L * i, ORDER))
          .intoMemorySegment(dst, to + 4L * i, ORDER);
    }
    if (i < n) {
      VectorMask<Float> tail = SPECIES.indexInRange(i, n);
      FloatVector.fromMemorySegment(SPECIES, src, from + 4L * i, ORDER, tail)
          .add(FloatVector.fromMemorySegment(SPECIES, dst, to + 4L * i, ORDER, tail))
          .intoMemorySegment(dst, to + 4L * i, ORDER, tail);
    }
  }

  /** {@code dst[j] = src[j * stride]} for j in [0, n): a strided gather, scalar. */
  static void gather(MemorySegment src, long from, int stride, MemorySegment dst, long to, int n) {
    long step = 4L * stride;
    for (int j = 0; j < n; j++) {
      dst.set(JAVA_FLOAT_UNALIGNED, to + 4L * j, src.get(JAVA_FLOAT_UNALIGNED, from + j * step));
    }
  }

  /** {@code dst[j * stride] += src[j]} for j in [0, n): a strided scatter-add, scalar. */
  static void scatterAdd(MemorySegment src, long from, MemorySegment dst, long to, int stride, int n) {
    long step = 4L * stride;
    for (int j = 0; j < n; j++) {
      long at = to + j * step;
      dst.set(JAVA_FLOAT_UNALIGNED, at, dst.get(JAVA_FLOAT_UNALIGNED, at) + src.get(JAVA_FLOAT_UNALIGNED, from + 4L * j));
    }
  }
}
