package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The loops of {@link Pool2d}: one validated call, split over the N*C planes. Byte offsets
 * throughout. Reused per calling thread, so a call allocates nothing.
 *
 * <p>Forward works one output row at a time, LANES outputs per vector: for every tap (ih, kw)
 * of the window it loads the input at columns {@code first + j*stride} for lanes j, stride 1 as one
 * load, stride 2 as two loads whose even lanes a two-vector permute collects. Lanes whose column
 * falls in the padding read the padding value (-inf for max, 0 for average) through a masked load.
 * The row's running max and argmax, or sum, stay in registers inside one method.
 */
final class PoolTask implements ParallelTask {
  static final int MAX_FORWARD = 0;
  static final int MAX_BACKWARD = 1;
  static final int AVG_FORWARD = 2;
  static final int AVG_BACKWARD = 3;

  private static final ThreadLocal<PoolTask> PER_THREAD = ThreadLocal.withInitial(PoolTask::new);
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final VectorSpecies<Integer> INTS = SPECIES.vectorShape().withLanes(int.class);
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /** Lane indices 0, 2, 4, ...: the even lanes of two concatenated vectors. */
  private static final FloatVector EVEN = FloatVector.fromArray(SPECIES, evens(), 0);
  private static final IntVector IOTA = IntVector.zero(INTS).addIndex(1);
  private static final FloatVector NEG_INF = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
  /** Below this many input floats a call stays on one thread. */
  private static final long MIN_FLOATS_PER_THREAD = 1 << 15;

  private int op;
  private Pool2d g;
  private MemorySegment in;
  private long inOff;
  private MemorySegment out;
  private long outOff;
  private MemorySegment index;
  private long indexOff;
  private boolean countIncludePad;

  private static float[] evens() {
    float[] e = new float[LANES];
    for (int j = 0; j < LANES; j++) {
      e[j] = 2 * j;
    }
    return e;
  }

  /** Runs one pass; offsets are in elements. (in, out) are (x, y) forward and (dy, dx) backward. */
  static void run(int op, Pool2d g, MemorySegment in, long inOffset, MemorySegment out, long outOffset,
      MemorySegment index, long indexOffset, boolean countIncludePad, Parallelism parallelism) {
    PoolTask task = PER_THREAD.get();
    task.op = op;
    task.g = g;
    task.in = in;
    task.inOff = 4 * inOffset;
    task.out = out;
    task.outOff = 4 * outOffset;
    task.index = index;
    task.indexOff = 4 * indexOffset;
    task.countIncludePad = countIncludePad;
    if (op == MAX_BACKWARD) {
      checkArgmax(g, index, task.indexOff);
    }
    int planes = g.batch * g.channels;
    int parts = (int) Math.min(Math.min(parallelism.threads(), planes),
        Math.max(1, g.inputFloats() / MIN_FLOATS_PER_THREAD));
    if (!(Checks.shareable(in) && Checks.shareable(out) && Checks.shareable(index))) {
      parts = 1;
    }
    try {
      parallelism.invoke(task, parts);
    } finally {
      task.g = null;
      task.in = null;
      task.out = null;
      task.index = null;
    }
  }

  /** Every recorded argmax must lie in its plane; checked before dx is touched. */
  private static void checkArgmax(Pool2d g, MemorySegment idx, long at) {
    int plane = g.height * g.width;
    long outputs = g.outputFloats();
    for (long o = 0; o < outputs; o++) {
      int i = idx.get(JAVA_INT_UNALIGNED, at + 4 * o);
      if (i < 0 || i >= plane) {
        throw new IndexOutOfBoundsException("argmax[" + o + "] = " + i + " is outside its plane of " + g.height
            + "x" + g.width + " = " + plane + " elements (was it recorded by maxForward of " + g + "?)");
      }
    }
  }

  @Override
  public void run(int part, int parts) {
    int planes = g.batch * g.channels;
    int from = (int) ((long) planes * part / parts);
    int to = (int) ((long) planes * (part + 1) / parts);
    long imagePlane = 4L * g.height * g.width;
    long pooledPlane = 4L * g.outHeight * g.outWidth;
    boolean forward = op == MAX_FORWARD || op == AVG_FORWARD;
    // Forward reads image planes and writes pooled ones; backward reads pooled dy, writes image dx.
    long inPlane = forward ? imagePlane : pooledPlane;
    long outPlane = forward ? pooledPlane : imagePlane;
    for (int p = from; p < to; p++) {
      long x = inOff + p * inPlane;
      long y = outOff + p * outPlane;
      long idx = indexOff + p * pooledPlane;
      switch (op) {
        case MAX_FORWARD, AVG_FORWARD -> {
          boolean max = op == MAX_FORWARD;
          for (int oh = 0; oh < g.outHeight; oh++) {
            long yRow = y + 4L * oh * g.outWidth;
            if (g.strideW <= 2) {
              if (max) {
                maxRow(g, in, x, oh, out, yRow, index, idx + 4L * oh * g.outWidth);
              } else {
                avgRow(g, in, x, oh, out, yRow, countIncludePad);
              }
            } else {
              scalarRow(g, in, x, oh, out, yRow, index, idx + 4L * oh * g.outWidth, max, countIncludePad);
            }
          }
        }
        case MAX_BACKWARD -> maxBackwardPlane(g, in, x, index, idx, out, y);
        default -> avgBackwardPlane(g, in, x, out, y, countIncludePad);
      }
    }
  }

  /**
   * Lanes of a vector load starting at column {@code first} whose column lies in [0, width); the
   * others read nothing and take the padding value. Computed, not branched on, so that the loads
   * stay inline in the row loops: a helper returning a vector was compiled on its own ("already
   * compiled into a big method"), not inlined, and every vector it returned was boxed (384 bytes
   * per output vector, 176 MB per 32x64x112x112 max pool).
   */
  private static VectorMask<Float> inside(int first, int width) {
    // Integer compares: indexInRange with a negative start is not intrinsified and allocates.
    IntVector column = IOTA.add(first);
    return column.compare(VectorOperators.GE, 0).and(column.compare(VectorOperators.LT, width)).cast(SPECIES);
  }

  /**
   * One output row of max pooling, accumulated in the output row itself: start at -inf (index:
   * the window's first element inside the input), then fold in one window tap at a time. Each tap
   * is a small method that reads and writes the row, so no vector lives across a call; the row
   * (tens of floats) stays in L1.
   */
  private static void maxRow(Pool2d g, MemorySegment x, long planeAt, int oh, MemorySegment y, long yRow,
      MemorySegment idx, long idxRow) {
    int top = oh * g.strideH - g.padH;
    int h0 = Math.max(top, 0);
    int h1 = Math.min(top + g.kernelH, g.height);
    SegmentLoops.fill(y, yRow, g.outWidth, Float.NEGATIVE_INFINITY);
    if (idx != null) {
      firstIndices(g.outWidth, g.strideW, -g.padW, h0 * g.width, idx, idxRow);
    }
    for (int ih = h0; ih < h1; ih++) {
      long rowAt = planeAt + 4L * ih * g.width;
      for (int kw = 0; kw < g.kernelW; kw++) {
        maxTap(x, rowAt, kw - g.padW, g.strideW, g.width, ih * g.width, y, yRow, idx, idxRow, g.outWidth);
      }
    }
  }

  /** {@code idx[ow] = rowStart + max(ow*stride + left, 0)}: the first in-bounds element of each window. */
  private static void firstIndices(int outWidth, int stride, int left, int rowStart, MemorySegment idx, long idxRow) {
    for (int ow0 = 0; ow0 < outWidth; ow0 += LANES) {
      IOTA.add(ow0).mul(stride).add(left).max(0).add(rowStart)
          .intoMemorySegment(idx, idxRow + 4L * ow0, ORDER, INTS.indexInRange(ow0, outWidth));
    }
  }

  /**
   * Folds tap (row at {@code rowAt}, column offset {@code left}) into the row's running max:
   * output ow sees input column {@code ow*stride + left}. PyTorch's rule: a value replaces the
   * max if it is greater, or NaN.
   *
   * <p>Two passes through a per-thread row of tap values: gathering the tap (masked loads, the
   * stride-2 permute) and folding it in (compare, blend, argmax) in one loop was too big for C1
   * ("out of virtual registers"), stayed in tier-2 code and, inlined by C2 into the row loop, ran
   * past the inlining node budget: 63 MB boxed per 8x64x112x112 3x3 stride-2 padded pool.
   */
  private static void maxTap(MemorySegment x, long rowAt, int left, int stride, int width, int rowStart,
      MemorySegment y, long yRow, MemorySegment idx, long idxRow, int outWidth) {
    MemorySegment taps = tapRow(outWidth);
    gatherTap(x, rowAt, left, stride, width, taps, outWidth);
    foldMax(taps, rowStart + left, stride, y, yRow, idx, idxRow, outWidth);
  }

  private static final ThreadLocal<MemorySegment[]> TAP_ROW = ThreadLocal.withInitial(() -> new MemorySegment[1]);

  /** This thread's row of tap values, with a vector of slack; grown once, then reused. */
  private static MemorySegment tapRow(int outWidth) {
    MemorySegment[] holder = TAP_ROW.get();
    long bytes = 4L * (outWidth + LANES);
    if (holder[0] == null || holder[0].byteSize() < bytes) {
      holder[0] = java.lang.foreign.Arena.ofAuto().allocate(Math.max(bytes, 4096), 64);
    }
    return holder[0];
  }

  /** {@code taps[ow] = x[ow*stride + left]}, -inf where that column is outside [0, width). */
  private static void gatherTap(MemorySegment x, long rowAt, int left, int stride, int width, MemorySegment taps,
      int outWidth) {
    for (int ow0 = 0; ow0 < outWidth; ow0 += LANES) {
      int first = ow0 * stride + left;
      // Lanes whose column is in [0, width), from integer compares: indexInRange with a negative
      // start (the left padding) is not intrinsified, and its Java fallback allocates.
      IntVector column = IOTA.add(first);
      VectorMask<Float> in0 = column.compare(VectorOperators.GE, 0).and(column.compare(VectorOperators.LT, width))
          .cast(SPECIES);
      FloatVector v = NEG_INF.blend(FloatVector.fromMemorySegment(SPECIES, x, rowAt + 4L * first, ORDER, in0), in0);
      if (stride == 2) {
        int second = first + LANES;
        IntVector high = IOTA.add(second);
        VectorMask<Float> in1 = high.compare(VectorOperators.GE, 0).and(high.compare(VectorOperators.LT, width))
            .cast(SPECIES);
        FloatVector hi = NEG_INF.blend(FloatVector.fromMemorySegment(SPECIES, x, rowAt + 4L * second, ORDER, in1), in1);
        v = EVEN.selectFrom(v, hi);
      }
      v.intoMemorySegment(taps, 4L * ow0, ORDER);
    }
  }

  /** Folds the gathered taps into y and, where they win, their element index into idx. */
  private static void foldMax(MemorySegment taps, int firstIndex, int stride, MemorySegment y, long yRow,
      MemorySegment idx, long idxRow, int outWidth) {
    for (int ow0 = 0; ow0 < outWidth; ow0 += LANES) {
      VectorMask<Float> present = SPECIES.indexInRange(ow0, outWidth);
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, taps, 4L * ow0, ORDER);
      long at = yRow + 4L * ow0;
      FloatVector best = FloatVector.fromMemorySegment(SPECIES, y, at, ORDER, present);
      VectorMask<Float> takes = v.compare(VectorOperators.GT, best).or(v.test(VectorOperators.IS_NAN)).and(present);
      best.blend(v, takes).intoMemorySegment(y, at, ORDER, present);
      if (idx != null) {
        long ia = idxRow + 4L * ow0;
        IntVector arg = IntVector.fromMemorySegment(INTS, idx, ia, ORDER, present.cast(INTS));
        arg.blend(IOTA.add(ow0).mul(stride).add(firstIndex), takes.cast(INTS))
            .intoMemorySegment(idx, ia, ORDER, present.cast(INTS));
      }
    }
  }

  /** One output row of average pooling: zero, add each tap, then divide (see {@link #maxRow}). */
  private static void avgRow(Pool2d g, MemorySegment x, long planeAt, int oh, MemorySegment y, long yRow,
      boolean countIncludePad) {
    int top = oh * g.strideH - g.padH;
    int h0 = Math.max(top, 0);
    int h1 = Math.min(top + g.kernelH, g.height);
    SegmentLoops.fill(y, yRow, g.outWidth, 0f);
    for (int ih = h0; ih < h1; ih++) {
      long rowAt = planeAt + 4L * ih * g.width;
      for (int kw = 0; kw < g.kernelW; kw++) {
        sumTap(x, rowAt, kw - g.padW, g.strideW, g.width, y, yRow, g.outWidth);
      }
    }
    divideRow(g, h1 - h0, countIncludePad, y, yRow);
  }

  private static void sumTap(MemorySegment x, long rowAt, int left, int stride, int width, MemorySegment y,
      long yRow, int outWidth) {
    for (int ow0 = 0; ow0 < outWidth; ow0 += LANES) {
      int first = ow0 * stride + left;
      // Masked-off lanes load as zero, the padding value of a sum.
      FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, rowAt + 4L * first, ORDER, inside(first, width));
      if (stride == 2) {
        FloatVector hi = FloatVector.fromMemorySegment(SPECIES, x, rowAt + 4L * (first + LANES), ORDER,
            inside(first + LANES, width));
        v = EVEN.selectFrom(v, hi);
      }
      VectorMask<Float> present = SPECIES.indexInRange(ow0, outWidth);
      long at = yRow + 4L * ow0;
      FloatVector.fromMemorySegment(SPECIES, y, at, ORDER, present).add(v).intoMemorySegment(y, at, ORDER, present);
    }
  }

  /** Divides the row's sums by the kernel area, or by each window's count of inputs. */
  private static void divideRow(Pool2d g, int rows, boolean countIncludePad, MemorySegment y, long yRow) {
    for (int ow0 = 0; ow0 < g.outWidth; ow0 += LANES) {
      FloatVector divisor;
      if (countIncludePad) {
        divisor = FloatVector.broadcast(SPECIES, (float) (g.kernelH * g.kernelW));
      } else {
        IntVector start = IOTA.add(ow0).mul(g.strideW).sub(g.padW);
        IntVector cols = start.add(g.kernelW).min(g.width).sub(start.max(0));
        divisor = ((FloatVector) cols.convert(VectorOperators.I2F, 0)).mul((float) rows);
      }
      VectorMask<Float> present = SPECIES.indexInRange(ow0, g.outWidth);
      long at = yRow + 4L * ow0;
      FloatVector.fromMemorySegment(SPECIES, y, at, ORDER, present).div(divisor).intoMemorySegment(y, at, ORDER, present);
    }
  }

  /** Any stride, one output at a time, with the same scan order and rules as the vector rows. */
  private static void scalarRow(Pool2d g, MemorySegment x, long planeAt, int oh, MemorySegment y, long yRow,
      MemorySegment idx, long idxRow, boolean max, boolean countIncludePad) {
    int top = oh * g.strideH - g.padH;
    int h0 = Math.max(top, 0);
    int h1 = Math.min(top + g.kernelH, g.height);
    for (int ow = 0; ow < g.outWidth; ow++) {
      int left = ow * g.strideW - g.padW;
      int w0 = Math.max(left, 0);
      int w1 = Math.min(left + g.kernelW, g.width);
      float acc = max ? Float.NEGATIVE_INFINITY : 0f;
      int arg = h0 * g.width + w0;
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          float v = x.get(JAVA_FLOAT_UNALIGNED, planeAt + 4L * (ih * g.width + iw));
          if (!max) {
            acc += v;
          } else if (v > acc || Float.isNaN(v)) {
            acc = v;
            arg = ih * g.width + iw;
          }
        }
      }
      if (!max) {
        acc /= countIncludePad ? g.kernelH * g.kernelW : (h1 - h0) * (w1 - w0);
      }
      y.set(JAVA_FLOAT_UNALIGNED, yRow + 4L * ow, acc);
      if (max && idx != null) {
        idx.set(JAVA_INT_UNALIGNED, idxRow + 4L * ow, arg);
      }
    }
  }

  private static void maxBackwardPlane(Pool2d g, MemorySegment dy, long dyPlane, MemorySegment idx, long idxPlane,
      MemorySegment dx, long dxPlane) {
    int plane = g.height * g.width;
    SegmentLoops.fill(dx, dxPlane, plane, 0f);
    int outputs = g.outHeight * g.outWidth;
    for (int o = 0; o < outputs; o++) {
      int at = idx.get(JAVA_INT_UNALIGNED, idxPlane + 4L * o);
      long d = dxPlane + 4L * at;
      dx.set(JAVA_FLOAT_UNALIGNED, d, dx.get(JAVA_FLOAT_UNALIGNED, d) + dy.get(JAVA_FLOAT_UNALIGNED, dyPlane + 4L * o));
    }
  }

  private static void avgBackwardPlane(Pool2d g, MemorySegment dy, long dyPlane, MemorySegment dx, long dxPlane,
      boolean countIncludePad) {
    SegmentLoops.fill(dx, dxPlane, g.height * g.width, 0f);
    for (int oh = 0; oh < g.outHeight; oh++) {
      int top = oh * g.strideH - g.padH;
      int h0 = Math.max(top, 0);
      int h1 = Math.min(top + g.kernelH, g.height);
      for (int ow = 0; ow < g.outWidth; ow++) {
        int left = ow * g.strideW - g.padW;
        int w0 = Math.max(left, 0);
        int w1 = Math.min(left + g.kernelW, g.width);
        int count = countIncludePad ? g.kernelH * g.kernelW : (h1 - h0) * (w1 - w0);
        float share = dy.get(JAVA_FLOAT_UNALIGNED, dyPlane + 4L * (oh * g.outWidth + ow)) / count;
        for (int ih = h0; ih < h1; ih++) {
          long row = dxPlane + 4L * ih * g.width;
          for (int iw = w0; iw < w1; iw++) {
            long d = row + 4L * iw;
            dx.set(JAVA_FLOAT_UNALIGNED, d, dx.get(JAVA_FLOAT_UNALIGNED, d) + share);
          }
        }
      }
    }
  }
}
