package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The loops of {@link Pool2d}: one validated call, split over the N*C planes. Byte offsets
 * throughout. Reused per calling thread, so a call allocates nothing.
 *
 * <p>Forward works one output row at a time, LANES outputs per vector: for every tap (ih, kw)
 * of the window it loads the input at columns {@code first + j*stride} for lanes j, stride 1 as one
 * load, stride 2 as two loads whose even lanes a two-vector permute collects. Outputs whose
 * windows reach into the left or right padding go one at a time ({@link #scalarRow}). The row's
 * running max and argmax, or sum, stay in registers inside one method. Max pooling with 3 x 3
 * windows at stride 2 splits each input row into its even and odd columns first
 * ({@link #maxPlaneStride2}), so that its overlapping taps are plain loads.
 */
final class PoolTask implements ParallelTask {
  static final int MAX_FORWARD = 0;
  static final int MAX_BACKWARD = 1;
  static final int AVG_FORWARD = 2;
  static final int AVG_BACKWARD = 3;

  private static final ThreadLocal<PoolTask> PER_THREAD = ThreadLocal.withInitial(PoolTask::new);
  /**
   * One output row's {@code dy / count}, for the average backward, per running thread (the pool's
   * workers run parts of one task); grown, never shrunk.
   */
  private static final ThreadLocal<float[][]> SHARES = ThreadLocal.withInitial(() -> new float[][] {new float[0]});
  /** {@link #maxPlaneStride2}'s arrays, per running thread; grown, never shrunk. */
  private static final ThreadLocal<SplitRows> SPLIT_ROWS = ThreadLocal.withInitial(SplitRows::new);
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final VectorSpecies<Integer> INTS = SPECIES.vectorShape().withLanes(int.class);
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /**
   * The even and the odd lanes of two concatenated vectors (indices past the first vector wrap to
   * the second). Shuffles, not index vectors for {@code selectFrom}: an index vector's lanes live
   * in a float[], which C2 must assume {@link #splitRow}'s float[] stores may overwrite, so it
   * loaded and converted the index vectors anew on every step there.
   */
  private static final VectorShuffle<Float> EVEN_LANES = VectorShuffle.fromOp(SPECIES, j -> 2 * j);
  private static final VectorShuffle<Float> ODD_LANES = VectorShuffle.fromOp(SPECIES, j -> 2 * j + 1);
  private static final IntVector IOTA = IntVector.zero(INTS).addIndex(1);
  /** Lanes 0, 0, 1, 1, ...: the low half of a vector with every lane twice. */
  private static final VectorShuffle<Float> TWICE_LOW = VectorShuffle.fromOp(SPECIES, j -> j / 2);
  /** Lanes L/2, L/2, L/2+1, L/2+1, ...: the high half with every lane twice. */
  private static final VectorShuffle<Float> TWICE_HIGH = VectorShuffle.fromOp(SPECIES, j -> LANES / 2 + j / 2);
  /** Taps of a window row that the block loops unroll; wider windows loop over the rest. */
  private static final int UNROLLED_TAPS = 3;
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
    boolean splitRows = op == MAX_FORWARD && splitsRows(g);
    for (int p = from; p < to; p++) {
      long x = inOff + p * inPlane;
      long y = outOff + p * outPlane;
      long idx = indexOff + p * pooledPlane;
      switch (op) {
        // Max and average keep separate arms, each with its own row loop: with one shared arm the
        // split path ran 3-13% slower (old and new code alternating in one JVM).
        case MAX_FORWARD -> {
          if (splitRows) {
            maxPlaneStride2(g, in, x, out, y, index, idx);
          } else {
            for (int oh = 0; oh < g.outHeight; oh++) {
              forwardRow(g, in, x, oh, out, y + 4L * oh * g.outWidth, index, idx + 4L * oh * g.outWidth, true,
                  countIncludePad);
            }
          }
        }
        case AVG_FORWARD -> {
          for (int oh = 0; oh < g.outHeight; oh++) {
            forwardRow(g, in, x, oh, out, y + 4L * oh * g.outWidth, index, idx + 4L * oh * g.outWidth, false,
                countIncludePad);
          }
        }
        case MAX_BACKWARD -> maxBackwardPlane(g, in, x, index, idx, out, y);
        default -> avgBackwardPlane(g, in, x, out, y, countIncludePad);
      }
    }
  }

  /**
   * One output row: whole vectors of outputs whose windows lie inside the input row (the interior
   * of a plane, nearly all of it for the usual 2x2 and 3x3 pools), then the outputs at the padded
   * or ragged edges one at a time. Rows above and below the image are clipped away (h0, h1), so
   * vertical padding needs no test at all.
   *
   * <p>The last block overlaps the one before it rather than leaving a remainder: a 112-wide row
   * pooled 2x2 (56 outputs, 16 lanes) used to leave 8 outputs of every row to the scalar loop,
   * which took more time than the 48 vectorized ones.
   *
   * <p>Why not masked vectors at the edges too: an earlier version read every tap through masked
   * loads into a row in memory and folded it in with masked stores, and ran max2s2 at about 7x
   * the time of a copy of the same bytes. Unmasked loads with the running max, argmax or sum in
   * registers across the window's taps keep the interior near memory speed.
   */
  private static void forwardRow(Pool2d g, MemorySegment x, long planeAt, int oh, MemorySegment y, long yRow,
      MemorySegment idx, long idxRow, boolean max, boolean countIncludePad) {
    int top = oh * g.strideH - g.padH;
    int h0 = Math.max(top, 0);
    int h1 = Math.min(top + g.kernelH, g.height);
    int stride = g.strideW;
    int first = (g.padW + stride - 1) / stride; // the first output whose window starts inside the row
    // Outputs [first, inside) have their whole window inside the row.
    int inside = Math.max(first, Math.min(g.outWidth, Math.floorDiv(g.width + g.padW - g.kernelW, stride) + 1));
    // Stride 2 loads two vectors per tap and drops their odd lanes: the last tap's load reads
    // one float past its window, which must still be inside the segment (it is the next row's).
    long lastRowEnd = planeAt + 4L * ((long) h1 * g.width + (stride == 2 ? 1 : 0));
    int vectorEnd = first;
    if (stride <= 2 && inside - first >= LANES && h0 < h1 && lastRowEnd <= x.byteSize()) {
      vectorEnd = inside;
      if (max) {
        maxBlocks(x, planeAt, h0, h1, g.width, g.padW, stride, g.kernelW, first, inside, y, yRow, idx, idxRow);
      } else {
        // Divisor of an interior average: all kernelW columns are inside, rows are clipped.
        float area = countIncludePad ? g.kernelH * g.kernelW : (h1 - h0) * g.kernelW;
        sumBlocks(x, planeAt, h0, h1, g.width, g.padW, stride, g.kernelW, area, first, inside, y, yRow);
      }
    }
    scalarRow(g, x, planeAt, oh, 0, Math.min(first, g.outWidth), y, yRow, idx, idxRow, max, countIncludePad);
    scalarRow(g, x, planeAt, oh, Math.max(vectorEnd, Math.min(first, g.outWidth)), g.outWidth, y, yRow, idx, idxRow,
        max, countIncludePad);
  }

  /**
   * Max and argmax of the outputs [from, end) of a row, whose windows all lie inside the row, in
   * blocks of LANES outputs (lane j of a block at ow0 is output ow0 + j, its window starting at
   * input column {@code (ow0 + j)*stride - padW}); {@code end - from >= LANES}. The last block is
   * moved left to end at {@code end}, so it overlaps the block before it and computes those outputs
   * again, with the same bits. Taps go in window scan order (row by row, left to right); a tap
   * replaces the max if it is greater, or NaN, PyTorch's rule, so ties go to the first maximum.
   *
   * <p>One call per row, not per block: per block, the call and its setup cost more than the taps.
   */
  private static void maxBlocks(MemorySegment x, long planeAt, int h0, int h1, int width, int padW, int stride,
      int kernelW, int from, int end, MemorySegment y, long yRow, MemorySegment idx, long idxRow) {
    if (h1 - h0 == 2 && kernelW == 2 && stride == 2) {
      maxBlocks2x2(x, planeAt, h0, width, padW, from, end, y, yRow, idx, idxRow);
      return;
    }
    IntVector laneColumn = IOTA.mul(stride);
    for (int next = from; next < end; next += LANES) {
      int ow0 = Math.min(next, end - LANES);
      int left = ow0 * stride - padW;
      // Made here, not taken from a static final constant: a loop-carried vector whose first value
      // was a static final object was boxed at every tap (C2 kept the loop phi as an object): 330 B
      // per block, 132 MB per 32x64x112x112 2x2 pool, found with JFR on a JVM without TLABs.
      FloatVector best = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
      IntVector arg = laneColumn.add(h0 * width + left); // first tap; PyTorch's index for all -inf
      for (int ih = h0; ih < h1; ih++) {
        long rowAt = planeAt + 4L * (ih * width + left);
        // The plane indices of this window row's first taps; tap kw adds the constant kw, which C2
        // keeps in a register, where adding the scalar column + kw broadcast it anew at every tap.
        IntVector rowArg = laneColumn.add(ih * width + left);
        // Why a constant bound: C2 unrolls it fully, while a loop of kernelW (2 or 3) trips came
        // with more loop set-up than taps and ran max2s2 at 13 us per 112x112 plane.
        for (int kw = 0; kw < UNROLLED_TAPS; kw++) {
          if (kw < kernelW) {
            FloatVector v = tap(x, rowAt + 4L * kw, stride);
            VectorMask<Float> takes = takes(v, best, true);
            best = best.blend(v, takes);
            arg = arg.blend(rowArg.add(kw), takes.cast(INTS));
          }
        }
        for (int kw = UNROLLED_TAPS; kw < kernelW; kw++) {
          FloatVector v = tap(x, rowAt + 4L * kw, stride);
          VectorMask<Float> takes = takes(v, best, true);
          best = best.blend(v, takes);
          arg = arg.blend(rowArg.add(kw), takes.cast(INTS));
        }
      }
      best.intoMemorySegment(y, yRow + 4L * ow0, ORDER);
      if (idx != null) {
        arg.intoMemorySegment(idx, idxRow + 4L * ow0, ORDER);
      }
    }
  }

  /**
   * {@link #maxBlocks} for windows of two rows of 2 taps at stride 2 (the 2 x 2 pool), written
   * out. The first tap is taken as it is: "greater than -inf, or NaN" takes every value but -inf,
   * and -inf there keeps the same bits and index.
   *
   * <p>Why: in {@link #maxBlocks} C2 keeps the loop over window rows (two trips), and every tap
   * computes its address and checks two segment bounds: about 30 instructions a tap in the
   * disassembly. Against it, alternating in one JVM on one thread, this took 0.72-0.75 of the time
   * on 64 planes in L3 and 0.83-0.89 on 2048 planes from memory. The same taps written inside
   * maxBlocks' block loop (behind a test, ahead of the general rows) boxed their vectors: 4.2 MB
   * per 64-plane call, twice the time; in a method of their own they allocate nothing.
   */
  private static void maxBlocks2x2(MemorySegment x, long planeAt, int h0, int width, int padW, int from, int end,
      MemorySegment y, long yRow, MemorySegment idx, long idxRow) {
    IntVector laneColumn = IOTA.mul(2);
    for (int next = from; next < end; next += LANES) {
      int ow0 = Math.min(next, end - LANES);
      int left = ow0 * 2 - padW;
      long rowAt = planeAt + 4L * (h0 * width + left);
      IntVector top = laneColumn.add(h0 * width + left);
      IntVector bottom = laneColumn.add((h0 + 1) * width + left);
      FloatVector best = tap(x, rowAt, 2);
      IntVector arg = top;
      FloatVector v = tap(x, rowAt + 4, 2);
      VectorMask<Float> takes = takes(v, best, true);
      best = best.blend(v, takes);
      arg = arg.blend(top.add(1), takes.cast(INTS));
      v = tap(x, rowAt + 4L * width, 2);
      takes = takes(v, best, true);
      best = best.blend(v, takes);
      arg = arg.blend(bottom, takes.cast(INTS));
      v = tap(x, rowAt + 4L * width + 4, 2);
      takes = takes(v, best, true);
      best = best.blend(v, takes);
      arg = arg.blend(bottom.add(1), takes.cast(INTS));
      best.intoMemorySegment(y, yRow + 4L * ow0, ORDER);
      if (idx != null) {
        arg.intoMemorySegment(idx, idxRow + 4L * ow0, ORDER);
      }
    }
  }

  /**
   * Whether max pooling takes {@link #maxPlaneStride2}: 3 x 3 windows at stride 2 both ways,
   * padding at most 1, and rows wide enough for a vector of outputs. Other windows stay with
   * {@link #maxBlocks}. 2 x 2 at stride 2 in particular: its taps do not overlap, so splitting the
   * rows first saves no permutes and costs the split (an early version that took them too ran a
   * 112 x 112 plane in 6.2 us against 5.1 us strided).
   */
  private static boolean splitsRows(Pool2d g) {
    return g.strideW == 2 && g.kernelW == 3 && g.padW <= 1 && g.strideH == 2 && g.kernelH == 3 && g.padH <= 1
        && g.outWidth >= LANES + 2;
  }

  /**
   * Max pooling of one plane, 3 x 3 windows at stride 2, one output row per step.
   *
   * <p>Across: input rows are split into their even and odd columns, {@code E[m] = x[2m]} and
   * {@code O[m] = x[2m + 1]}, in per-thread arrays, so that the window tap at column
   * {@code 2*ow + s} ({@code s = kw - padW}, from -1 to 2) is {@code E[ow + s/2]} for even s and
   * {@code O[ow + (s-1)/2]} for odd s: LANES outputs' taps are one plain array load each, where
   * the strided form ({@link #maxBlocks}) loads two vectors and permutes them for every tap.
   *
   * <p>Down: output row oh covers input rows {@code top = 2*oh - padH}, top + 1 and top + 2. Row
   * top was the last row of the previous output row's window, so its row maxima (max over each
   * output's 3 taps in that row, with the index) are kept from that step; rows top + 1 and
   * top + 2 are split, and one loop ({@link #windowRows}) takes their row maxima, combines the
   * three rows and keeps row top + 2's maxima for the next step. The first step's row top is the
   * padding (a row of -inf) or row 0, whose maxima a step before the loop takes.
   *
   * <p>Why one loop per output row: a 112 x 112 plane has rows of 7 vectors, and each inner loop
   * C2 enters costs its set-up (bounds, pre- and post-loops). The previous version split a row,
   * took its row maxima and combined the window in separate loops, five per output row, and a
   * plane of the same floats in 28 rows of 448 ran in 0.6 of the time of 112 rows of 112. Against
   * it, alternating in one JVM on one thread, this one took 0.86 to 0.95 of the time on 32x64
   * planes from memory, and 0.99 to 1.03 on 64 planes in L3: the gain is in overlapping the
   * input's loads with the window's work more than in the set-up saved.
   *
   * <p>Tried and slower: splitting the whole plane first (a pure stream of loads), 1.10 to 1.25
   * times the time from memory; splitting the next output row's rows before this row's window,
   * 1.03 to 1.12.
   *
   * <p>Order: "b replaces a if b > a or b is NaN" (a before b in scan order) is associative -- it
   * picks the last NaN if there is one, else the first maximum -- so row maxima combined in row
   * order give the scan's bits and index. The split odd columns have a -inf before them for the
   * left padding, so output 0 runs in the vector loops too (as {@link #scalarRow} it took a fifth
   * of the plane's time). A missing bottom row (odd height, padding 1) is a split row of -inf,
   * which never wins. The padding row above the image has the index of the window's first tap
   * inside the image, PyTorch's index for a window of -inf. Outputs whose windows cross the right
   * edge go to {@link #scalarRow}.
   */
  private static void maxPlaneStride2(Pool2d g, MemorySegment x, long planeAt, MemorySegment y, long yPlane,
      MemorySegment idx, long idxPlane) {
    int width = g.width;
    int phase = (width + 1) / 2;
    int rowFloats = 2 * phase + 1; // the even columns, one -inf, the odd columns
    int outWidth = g.outWidth;
    SplitRows scratch = SPLIT_ROWS.get().fit(rowFloats, outWidth);
    float[] vals = scratch.vals;
    int[] args = scratch.args;
    // Windows of outputs [0, inside) end inside the row; the left padding is read from the -inf.
    // splitsRows makes it at least LANES + 1: the output row less at most one.
    int inside = Math.min(outWidth, Math.floorDiv(width + g.padW - g.kernelW, 2) + 1);
    int full = inside / LANES;
    boolean tail = full * LANES < inside;
    // Tap kw's offset in a split row, for output 0: phase (s & 1), position s >> 1.
    int c0 = tapOffset(0 - g.padW, phase);
    int c1 = tapOffset(1 - g.padW, phase);
    int c2 = tapOffset(2 - g.padW, phase);
    int prev = 0; // where the row maxima of row top are: vals[prev + ow]; the next step's go to the other half
    float[] a = scratch.rowA; // an output row's input rows top + 1 and top + 2, split
    float[] b = scratch.rowB;
    a[phase] = Float.NEGATIVE_INFINITY; // O[-1], the left padding, read by output 0's first tap when padW = 1
    b[phase] = Float.NEGATIVE_INFINITY;
    // Row top of output row 0 is the padding row for padH = 1: -inf, with the index of each
    // window's first tap (output 0's is fixed below).
    for (int ow = 0; ow < outWidth; ow++) {
      vals[ow] = Float.NEGATIVE_INFINITY;
      args[ow] = 2 * ow - g.padW;
    }
    if (g.padH == 0) {
      // Row top is row 0: its row maxima come from a step over that padding row, a row of -inf
      // and row 0 (as b), which also writes output row 0; the loop writes it again.
      boolean nan = splitRow(x, planeAt, width, b, phase + 1);
      windowRows(scratch.negInf, b, c0, c1, c2, -width - g.padW, width, vals, args, 0, outWidth, 0, full, y,
          yPlane, idx, idxPlane, nan);
      if (tail) {
        windowRows(scratch.negInf, b, c0, c1, c2, -width - g.padW, width, vals, args, 0, outWidth, inside - LANES,
            1, y, yPlane, idx, idxPlane, nan);
      }
      prev = outWidth;
    }
    for (int oh = 0; oh < g.outHeight; oh++) {
      int top = 2 * oh - g.padH;
      boolean nan = splitRows(g, x, planeAt, oh, a, b);
      float[] bottom = top + 2 < g.height ? b : scratch.negInf;
      long yRow = yPlane + 4L * oh * outWidth;
      long idxRow = idxPlane + 4L * oh * outWidth;
      int next = outWidth - prev;
      int argA = (top + 1) * width - g.padW;
      windowRows(a, bottom, c0, c1, c2, argA, width, vals, args, prev, next, 0, full, y, yRow, idx, idxRow,
          nan);
      if (tail) {
        windowRows(a, bottom, c0, c1, c2, argA, width, vals, args, prev, next, inside - LANES, 1, y, yRow,
            idx, idxRow, nan);
      }
      prev = next;
      // Output 0's first tap was the padding: it keeps the index only if every tap is -inf,
      // where the rule's index is that of the first tap inside the image.
      if (g.padW == 1 && idx != null && y.get(JAVA_FLOAT_UNALIGNED, yRow) == Float.NEGATIVE_INFINITY) {
        idx.set(JAVA_INT_UNALIGNED, idxRow, Math.max(top, 0) * width);
      }
      scalarRow(g, x, planeAt, oh, inside, outWidth, y, yRow, idx, idxRow, true, false);
    }
  }

  /**
   * Splits the input rows top + 1 and top + 2 of output row oh ({@code top = 2*oh - padH}) into a
   * and b; b is left alone where row top + 2 is below the image. Says whether they may hold a NaN.
   */
  private static boolean splitRows(Pool2d g, MemorySegment x, long planeAt, int oh, float[] a, float[] b) {
    int top = 2 * oh - g.padH;
    int odd = (g.width + 1) / 2 + 1;
    long rowAt = planeAt + 4L * (top + 1) * g.width;
    boolean nan = splitRow(x, rowAt, g.width, a, odd);
    if (top + 2 < g.height) {
      nan |= splitRow(x, rowAt + 4L * g.width, g.width, b, odd);
    }
    return nan;
  }

  /** Where tap {@code s} of output 0 lies in a split row: in the odd half for odd s, at {@code floor(s/2)}. */
  private static int tapOffset(int s, int phase) {
    return (s & 1) * (phase + 1) + (s >> 1);
  }

  /**
   * Splits one input row of {@code width} floats into {@code row[m] = x[2m]}, {@code row[odd + m] = x[2m+1]},
   * and says whether the row may hold a NaN: false means it holds none.
   *
   * <p>Why the NaN test: the rule "b > a or b is NaN" is three instructions per tap, "b > a" one,
   * and for rows without NaN they agree. The row's floats are summed on the way (one add per
   * vector pair): a NaN anywhere makes the sum NaN. The sum can also be NaN without one (inf - inf,
   * or an overflow to inf meeting -inf), which only sends a row down the slower, always exact path.
   * A small gain, measured with the old and new classes alternating in one JVM, one thread, on
   * 112x112 planes without NaN, 3x3 stride 2 pad 1: 0.93-0.99 of the time (median 0.965) for 64
   * planes in L3, 0.90-1.04 (median 0.97) for 2048 planes from memory.
   */
  private static boolean splitRow(MemorySegment x, long rowAt, int width, float[] row, int odd) {
    FloatVector sum = FloatVector.zero(SPECIES);
    int m = 0;
    // Pairs of input vectors that fit: m + LANES <= width / 2. Written as a plain bound, C2 sees a
    // counted loop: it unrolled it 4 times and checked every bound before it (11.5 instructions a
    // pair, from 33), and splitting took about 2.8 us per 112 x 112 plane in cache against 3.8.
    // A whole 32x64x112x112 pool, from memory, did not measurably change (0.92-1.04x).
    int pairs = width / 2 - LANES + 1;
    for (; m < pairs; m += LANES) {
      FloatVector lo = FloatVector.fromMemorySegment(SPECIES, x, rowAt + 8L * m, ORDER);
      FloatVector hi = FloatVector.fromMemorySegment(SPECIES, x, rowAt + 8L * m + 4L * LANES, ORDER);
      lo.rearrange(EVEN_LANES, hi).intoArray(row, m);
      lo.rearrange(ODD_LANES, hi).intoArray(row, odd + m);
      sum = sum.add(lo.add(hi));
    }
    boolean nan = sum.compare(VectorOperators.NE, sum).anyTrue();
    for (; 2 * m < width; m++) {
      float even = x.get(JAVA_FLOAT_UNALIGNED, rowAt + 8L * m);
      row[m] = even;
      nan |= even != even;
      if (2 * m + 1 < width) {
        float oddValue = x.get(JAVA_FLOAT_UNALIGNED, rowAt + 8L * m + 4);
        row[odd + m] = oddValue;
        nan |= oddValue != oddValue;
      }
    }
    return nan;
  }

  /**
   * {@code count} blocks of LANES outputs from output {@code ow0} of one output row: the row maxima
   * of split rows a and b (input rows top + 1 and top + 2; a's tap 0 of output ow has plane index
   * {@code argA + 2*ow}, b's one row further), combined after those of row top
   * ({@code vals[prev + ow]}, {@code args[prev + ow]}) in that order, into y and idx; b's row maxima
   * go to {@code vals[next + ow]}, {@code args[next + ow]} for the next output row. {@code nan}
   * false promises that rows a and b hold no NaN; row top's maxima need no such promise, as a NaN
   * already in {@code best} stays there under "greater" alone.
   */
  private static void windowRows(float[] a, float[] b, int c0, int c1, int c2, int argA, int width, float[] vals,
      int[] args, int prev, int next, int ow0, int count, MemorySegment y, long yRow, MemorySegment idx,
      long idxRow, boolean nan) {
    IntVector laneColumn = IOTA.mul(2);
    for (int blk = 0; blk < count; blk++) {
      int ow = ow0 + blk * LANES;
      IntVector columnA = laneColumn.add(argA + 2 * ow);
      FloatVector maxA = FloatVector.fromArray(SPECIES, a, c0 + ow);
      IntVector argMaxA = columnA;
      FloatVector v = FloatVector.fromArray(SPECIES, a, c1 + ow);
      VectorMask<Float> takes = takes(v, maxA, nan);
      maxA = maxA.blend(v, takes);
      argMaxA = argMaxA.blend(columnA.add(1), takes.cast(INTS));
      v = FloatVector.fromArray(SPECIES, a, c2 + ow);
      takes = takes(v, maxA, nan);
      maxA = maxA.blend(v, takes);
      argMaxA = argMaxA.blend(columnA.add(2), takes.cast(INTS));
      // Row b repeats row a's six lines by design: the same steps as a loop of two trips over the
      // rows ran 1.10 to 1.20 times the time (alternating in one JVM).
      IntVector columnB = columnA.add(width);
      FloatVector maxB = FloatVector.fromArray(SPECIES, b, c0 + ow);
      IntVector argMaxB = columnB;
      v = FloatVector.fromArray(SPECIES, b, c1 + ow);
      takes = takes(v, maxB, nan);
      maxB = maxB.blend(v, takes);
      argMaxB = argMaxB.blend(columnB.add(1), takes.cast(INTS));
      v = FloatVector.fromArray(SPECIES, b, c2 + ow);
      takes = takes(v, maxB, nan);
      maxB = maxB.blend(v, takes);
      argMaxB = argMaxB.blend(columnB.add(2), takes.cast(INTS));
      FloatVector best = FloatVector.fromArray(SPECIES, vals, prev + ow);
      IntVector arg = IntVector.fromArray(INTS, args, prev + ow);
      takes = takes(maxA, best, nan);
      best = best.blend(maxA, takes);
      arg = arg.blend(argMaxA, takes.cast(INTS));
      takes = takes(maxB, best, nan);
      best = best.blend(maxB, takes);
      arg = arg.blend(argMaxB, takes.cast(INTS));
      maxB.intoArray(vals, next + ow);
      argMaxB.intoArray(args, next + ow);
      best.intoMemorySegment(y, yRow + 4L * ow, ORDER);
      if (idx != null) {
        arg.intoMemorySegment(idx, idxRow + 4L * ow, ORDER);
      }
    }
  }

  /**
   * Whether v replaces best: v is greater, or (unless the caller knows there is none) v is NaN.
   * {@code v != v} is the NaN test: one unordered compare on AVX2, where test(IS_NAN) became a
   * copy, an and and an integer compare.
   */
  private static VectorMask<Float> takes(FloatVector v, FloatVector best, boolean nan) {
    VectorMask<Float> greater = v.compare(VectorOperators.GT, best);
    return nan ? greater.or(v.compare(VectorOperators.NE, v)) : greater;
  }

  /** Averages of the outputs [from, end) of a row, in blocks as {@link #maxBlocks}: sum in scan order, then divide. */
  private static void sumBlocks(MemorySegment x, long planeAt, int h0, int h1, int width, int padW, int stride,
      int kernelW, float area, int from, int end, MemorySegment y, long yRow) {
    if (h1 - h0 == 2 && kernelW == 2 && stride == 2) {
      sumBlocks2x2(x, planeAt, h0, width, padW, area, from, end, y, yRow);
      return;
    }
    for (int next = from; next < end; next += LANES) {
      int ow0 = Math.min(next, end - LANES);
      int left = ow0 * stride - padW;
      FloatVector sum = FloatVector.zero(SPECIES);
      for (int ih = h0; ih < h1; ih++) {
        long rowAt = planeAt + 4L * (ih * width + left);
        for (int kw = 0; kw < UNROLLED_TAPS; kw++) {
          if (kw < kernelW) {
            sum = sum.add(tap(x, rowAt + 4L * kw, stride));
          }
        }
        for (int kw = UNROLLED_TAPS; kw < kernelW; kw++) {
          sum = sum.add(tap(x, rowAt + 4L * kw, stride));
        }
      }
      sum.div(area).intoMemorySegment(y, yRow + 4L * ow0, ORDER);
    }
  }

  /**
   * {@link #sumBlocks} for windows of two rows of 2 taps at stride 2, written out, for the reason
   * {@link #maxBlocks2x2} gives; the same additions in the same order, so the same bits. Against
   * sumBlocks, alternating in one JVM on one thread: 0.57 of the time on 64 planes in L3, 0.79-0.82
   * on 2048 planes from memory.
   */
  private static void sumBlocks2x2(MemorySegment x, long planeAt, int h0, int width, int padW, float area, int from,
      int end, MemorySegment y, long yRow) {
    for (int next = from; next < end; next += LANES) {
      int ow0 = Math.min(next, end - LANES);
      long rowAt = planeAt + 4L * (h0 * width + ow0 * 2 - padW);
      FloatVector sum = FloatVector.zero(SPECIES).add(tap(x, rowAt, 2)).add(tap(x, rowAt + 4, 2))
          .add(tap(x, rowAt + 4L * width, 2)).add(tap(x, rowAt + 4L * width + 4, 2));
      sum.div(area).intoMemorySegment(y, yRow + 4L * ow0, ORDER);
    }
  }

  /**
   * One tap of LANES windows: the floats at {@code at + 4*j*stride}, stride 1 or 2. Stride 2 loads
   * two vectors and keeps their even lanes, which reads one float past the last window.
   */
  private static FloatVector tap(MemorySegment x, long at, int stride) {
    FloatVector v = FloatVector.fromMemorySegment(SPECIES, x, at, ORDER);
    return stride == 2 ? v.rearrange(EVEN_LANES, FloatVector.fromMemorySegment(SPECIES, x, at + 4L * LANES, ORDER)) : v;
  }

  /** Outputs [owFrom, owTo) of a row, any stride, one at a time, with the same scan order and rules as the blocks. */
  private static void scalarRow(Pool2d g, MemorySegment x, long planeAt, int oh, int owFrom, int owTo,
      MemorySegment y, long yRow, MemorySegment idx, long idxRow, boolean max, boolean countIncludePad) {
    int top = oh * g.strideH - g.padH;
    int h0 = Math.max(top, 0);
    int h1 = Math.min(top + g.kernelH, g.height);
    for (int ow = owFrom; ow < owTo; ow++) {
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

  /** {@code row[2 ow] = row[2 ow + 1] = share[ow]} for {@code ow < outputs}. */
  private static void spreadPairs(float[] share, int outputs, MemorySegment dx, long row) {
    int ow = 0;
    for (; ow + LANES <= outputs; ow += LANES) {
      FloatVector v = FloatVector.fromArray(SPECIES, share, ow);
      v.rearrange(TWICE_LOW).intoMemorySegment(dx, row + 8L * ow, ORDER);
      v.rearrange(TWICE_HIGH).intoMemorySegment(dx, row + 8L * ow + 4L * LANES, ORDER);
    }
    for (; ow < outputs; ow++) {
      dx.set(JAVA_FLOAT_UNALIGNED, row + 8L * ow, share[ow]);
      dx.set(JAVA_FLOAT_UNALIGNED, row + 8L * ow + 4, share[ow]);
    }
  }

  /**
   * Average backward: every input of a window gets {@code dy / count}. One output row at a time,
   * its shares are computed once into {@link #SHARES}, then spread over the window rows tap by
   * tap, each tap one long loop over the row's outputs. (Output by output, with the window's
   * bounds worked out per output and 2-trip loops over its rows and taps, it ran at 34x copy.)
   *
   * <p>Windows that tile the image (stride = kernel, no padding) touch every input at most once:
   * the shares are stored rather than added, and only the uncovered right and bottom margins are
   * zeroed, so the plane is neither filled first nor read back.
   */
  private static void avgBackwardPlane(Pool2d g, MemorySegment dy, long dyPlane, MemorySegment dx, long dxPlane,
      boolean countIncludePad) {
    boolean tiles = g.strideH == g.kernelH && g.strideW == g.kernelW && g.padH == 0 && g.padW == 0;
    if (!tiles) {
      SegmentLoops.fill(dx, dxPlane, g.height * g.width, 0f);
    }
    float[][] slot = SHARES.get();
    if (slot[0].length < g.outWidth) {
      slot[0] = new float[g.outWidth];
    }
    float[] share = slot[0];
    for (int oh = 0; oh < g.outHeight; oh++) {
      int top = oh * g.strideH - g.padH;
      int h0 = Math.max(top, 0);
      int h1 = Math.min(top + g.kernelH, g.height);
      long dyRow = dyPlane + 4L * oh * g.outWidth;
      for (int ow = 0; ow < g.outWidth; ow++) {
        int left = ow * g.strideW - g.padW;
        int count = countIncludePad ? g.kernelH * g.kernelW
            : (h1 - h0) * (Math.min(left + g.kernelW, g.width) - Math.max(left, 0));
        share[ow] = dy.get(JAVA_FLOAT_UNALIGNED, dyRow + 4L * ow) / count;
      }
      for (int ih = h0; ih < h1; ih++) {
        long row = dxPlane + 4L * ih * g.width;
        for (int kw = 0; kw < g.kernelW; kw++) {
          // Outputs whose tap kw falls inside the row: 0 <= ow*stride - pad + kw < width.
          int first = Math.max(0, Math.ceilDiv(g.padW - kw, g.strideW));
          int last = Math.min(g.outWidth - 1, Math.floorDiv(g.width - 1 + g.padW - kw, g.strideW));
          long at = row + 4L * (first * g.strideW - g.padW + kw);
          long step = 4L * g.strideW;
          if (tiles && g.kernelW == 2 && kw == 0) {
            // Taps 0 and 1 together: each share twice, side by side, LANES/2 shares per vector.
            spreadPairs(share, g.outWidth, dx, row);
            break;
          } else if (tiles) {
            for (int ow = first; ow <= last; ow++, at += step) {
              dx.set(JAVA_FLOAT_UNALIGNED, at, share[ow]);
            }
          } else {
            for (int ow = first; ow <= last; ow++, at += step) {
              dx.set(JAVA_FLOAT_UNALIGNED, at, dx.get(JAVA_FLOAT_UNALIGNED, at) + share[ow]);
            }
          }
        }
        if (tiles) {
          int covered = g.outWidth * g.kernelW;
          SegmentLoops.fill(dx, row + 4L * covered, g.width - covered, 0f);
        }
      }
    }
    if (tiles) {
      int coveredRows = g.outHeight * g.kernelH;
      SegmentLoops.fill(dx, dxPlane + 4L * coveredRows * g.width, (g.height - coveredRows) * g.width, 0f);
    }
  }

  /**
   * Two split input rows, a split row of -inf, and two halves of row maxima (values and plane
   * indices): the previous output row's last row and the current one's.
   */
  private static final class SplitRows {
    float[] rowA = new float[0];
    float[] rowB = new float[0];
    float[] negInf = new float[0];
    float[] vals = new float[0];
    int[] args = new int[0];

    SplitRows fit(int splitFloats, int outWidth) {
      if (negInf.length < splitFloats) {
        rowA = new float[splitFloats];
        rowB = new float[splitFloats];
        negInf = new float[splitFloats];
        Arrays.fill(negInf, Float.NEGATIVE_INFINITY);
      }
      if (vals.length < 2 * outWidth) {
        vals = new float[2 * outWidth];
        args = new int[2 * outWidth];
      }
      return this;
    }
  }
}
