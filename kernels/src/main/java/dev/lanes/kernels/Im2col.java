package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * im2col and its adjoint col2im for one image and one group of channels of a {@link Conv2d}.
 *
 * <p>The column matrix of a group has one row per (channel, kernel row, kernel column) triple,
 * {@code q = (c * R + r) * S + s}, and one column per output position {@code p = oh * Wout + ow}:
 * {@code col[q][p] = x[c][oh*sh - ph + r*dh][ow*sw - pw + s*dw]}, zero where that falls in the
 * padding. These routines fill or drain a block of it: rows {@code [q0, q1)}, columns
 * {@code [p0, p1)}, stored row-major with a row pitch of {@code p1 - p0} floats, so a caller can
 * work through an image in column chunks that stay in L2 while the GEMM packs them.
 *
 * <p>Within one output row the positions of a kernel tap are an arithmetic run in the input row
 * (step sw), so each (q, output row) pair is three runs: zeros on the left padding, a copy (a
 * vector copy when sw = 1), zeros on the right. col2im walks the same runs and adds instead.
 */
final class Im2col {
  private Im2col() {}

  /**
   * Fills rows [q0, q1) x columns [p0, p1) of the column matrix from the group's input planes,
   * which start at byte {@code xAt} (channel c of the group at {@code xAt + c*H*W*4}).
   */
  static void fill(Conv2d g, MemorySegment x, long xAt, int q0, int q1, int p0, int p1,
      MemorySegment col, long colAt) {
    if (shiftsWhole(g)) {
      shiftedRows(g, q0, q1, p0, p1, x, xAt, col, colAt, false);
      return;
    }
    int pitch = p1 - p0;
    for (int q = q0; q < q1; q++) {
      walk(g, q, p0, p1, x, xAt, col, colAt + 4L * (q - q0) * pitch, false);
    }
  }

  /**
   * Adds rows [q0, q1) x columns [p0, p1) of a column-matrix gradient into the group's input
   * gradient planes at byte {@code dxAt}: every input element receives the sum of the column
   * entries that were copied from it, in (q, p) order. Where {@link #shiftsWhole} holds, the
   * entries of padding positions in {@code dcol} are set to 0 on the way (it is scratch).
   */
  static void drainAdd(Conv2d g, MemorySegment dcol, long dcolAt, int q0, int q1, int p0, int p1,
      MemorySegment dx, long dxAt) {
    if (shiftsWhole(g)) {
      shiftedRows(g, q0, q1, p0, p1, dx, dxAt, dcol, dcolAt, true);
      return;
    }
    int pitch = p1 - p0;
    for (int q = q0; q < q1; q++) {
      walk(g, q, p0, p1, dx, dxAt, dcol, dcolAt + 4L * (q - q0) * pitch, true);
    }
  }

  /**
   * Whether every row of the column matrix is the input plane shifted by a constant: stride 1 both
   * ways and an output as wide as the input ("same" padding along W, as ResNet's 3x3 pad 1 has).
   * Then position {@code p = oh*W + ow} of row (c, r, s) reads input element
   * {@code p + (r*dh - ph)*W + (s*dw - pw)} of plane c, and a chunk of a row is one contiguous
   * run of the plane, except for the padding positions.
   */
  private static boolean shiftsWhole(Conv2d g) {
    return g.strideH == 1 && g.strideW == 1 && g.outWidth == g.width;
  }

  /**
   * {@link #fill} or {@link #drainAdd} where {@link #shiftsWhole} holds: per row q, one copy (or
   * add) of the chunk's whole run, then the padding positions by themselves.
   *
   * <p>Why: {@link #walk}'s three calls per output row (zeros, copy, zeros) on runs of 56 floats,
   * and its divisions per row, made im2col a quarter of a ResNet 3x3 forward on one thread
   * (measured, Zen 3: 8.4-9.4 ms of 37-40 for 8 images). Here a chunk of two output rows is one
   * 112-float copy plus two single-float stores, and (c, r, s) are stepped, not divided out:
   * 4.8-5.1 ms for the same 8 images.
   *
   * <p>The run read from the plane also covers its padding columns, which pick up the neighbouring
   * row's edge (the run is clipped where it would leave the plane, only ever at padding columns).
   * The fill overwrites those entries with 0; the drain first zeroes them in dcol, so the
   * neighbours get +0 added: the same sums as walk's, in the same order.
   */
  private static void shiftedRows(Conv2d g, int q0, int q1, int p0, int p1, MemorySegment image, long imageAt,
      MemorySegment col, long colAt, boolean drain) {
    int width = g.width;
    int pitch = p1 - p0;
    long planeFloats = (long) g.height * width;
    // Where p0's output row starts: the chunk's later row starts are stepped from it, not divided out.
    int firstRowStart = p0 - p0 % width;
    int taps = g.kernelH * g.kernelW;
    int c = q0 / taps;
    int r = q0 % taps / g.kernelW;
    int s = q0 % g.kernelW;
    for (int q = q0; q < q1; q++) {
      long rowAt = colAt + 4L * (q - q0) * pitch;
      long plane = imageAt + 4L * c * planeFloats;
      int rowShift = r * g.dilationH - g.padH;
      int colShift = s * g.dilationW - g.padW;
      // Positions whose input row exists: output rows [-rowShift, height - rowShift).
      int validFrom = (int) Math.min(p1, Math.max(p0, (long) -rowShift * width));
      int validTo = (int) Math.max(validFrom, Math.min(p1, (long) (g.height - rowShift) * width));
      if (!drain) {
        SegmentLoops.fill(col, rowAt, validFrom - p0, 0f);
        SegmentLoops.fill(col, rowAt + 4L * (validTo - p0), p1 - validTo, 0f);
      }
      if (validFrom < validTo) {
        // Padding columns of the valid rows: ow < -colShift on the left, ow >= width - colShift on the right.
        int left = Math.max(0, Math.min(width, -colShift));
        int right = Math.max(0, Math.min(width, colShift));
        boolean padded = left > 0 || right > 0;
        if (drain && padded) {
          zeroColumns(col, rowAt, p0, firstRowStart, validFrom, validTo, width, left, right);
        }
        long shift = (long) rowShift * width + colShift;
        long from = Math.max(validFrom, -shift);
        long to = Math.min(validTo, planeFloats - shift);
        if (from < to) {
          long src = plane + 4L * (from + shift);
          long dst = rowAt + 4L * (from - p0);
          if (drain) {
            SegmentLoops.addInto(col, dst, image, src, (int) (to - from));
          } else {
            MemorySegment.copy(image, src, col, dst, 4L * (to - from));
          }
        }
        if (!drain && padded) {
          zeroColumns(col, rowAt, p0, firstRowStart, validFrom, validTo, width, left, right);
        }
      }
      if (++s == g.kernelW) {
        s = 0;
        if (++r == g.kernelH) {
          r = 0;
          c++;
        }
      }
    }
  }

  /**
   * Sets to 0 the entries of positions [from, to) (of a chunk row starting at position p0, byte
   * rowAt; output rows start at firstRowStart + k*width) whose output column is among the first
   * {@code left} or the last {@code right} of a row.
   */
  private static void zeroColumns(MemorySegment col, long rowAt, int p0, int firstRowStart, int from, int to,
      int width, int left, int right) {
    for (int rowStart = firstRowStart; rowStart < to; rowStart += width) {
      for (int p = Math.max(from, rowStart), end = Math.min(to, rowStart + left); p < end; p++) {
        col.set(JAVA_FLOAT_UNALIGNED, rowAt + 4L * (p - p0), 0f);
      }
      for (int p = Math.max(from, rowStart + width - right), end = Math.min(to, rowStart + width); p < end; p++) {
        col.set(JAVA_FLOAT_UNALIGNED, rowAt + 4L * (p - p0), 0f);
      }
    }
  }

  /**
   * One row q of the column matrix, columns [p0, p1), at byte {@code rowAt} of {@code col}:
   * filled from {@code image} or, if {@code drain}, added into it.
   */
  private static void walk(Conv2d g, int q, int p0, int p1, MemorySegment image, long imageAt,
      MemorySegment col, long rowAt, boolean drain) {
    int taps = g.kernelH * g.kernelW;
    int c = q / taps;
    int r = q % taps / g.kernelW;
    int s = q % g.kernelW;
    int height = g.height;
    int width = g.width;
    int outW = g.outWidth;
    int sw = g.strideW;
    long plane = imageAt + 4L * c * height * width;
    int p = p0;
    // Output row and column of p, divided once and then stepped: a run ends at a row's end (or
    // at p1), so the next one starts at column 0 of the next row. An integer division per run,
    // two more for the run's bounds, cost more than copying the run's 56 floats.
    int oh = p0 / outW;
    int ow = p0 - oh * outW;
    while (p < p1) {
      int run = Math.min(p1 - p, outW - ow);
      long at = rowAt + 4L * (p - p0);
      int ih = oh * g.strideH - g.padH + r * g.dilationH;
      if (ih < 0 || ih >= height) {
        if (!drain) {
          SegmentLoops.fill(col, at, run, 0f);
        }
      } else {
        // Input column of output column ow + j is first + j*sw; it exists for j in [lo, hi).
        int first = ow * sw - g.padW + s * g.dilationW;
        int lo;
        int hi;
        if (sw == 1) {
          lo = first >= 0 ? 0 : Math.min(run, -first);
          hi = first >= width ? 0 : Math.min(run, width - first);
        } else {
          lo = first >= 0 ? 0 : Math.min(run, (-first + sw - 1) / sw);
          hi = first >= width ? 0 : Math.min(run, (width - 1 - first) / sw + 1);
        }
        hi = Math.max(hi, lo);
        long src = plane + 4L * ((long) ih * width + first + (long) lo * sw);
        long dst = at + 4L * lo;
        int n = hi - lo;
        if (drain) {
          if (sw == 1) {
            SegmentLoops.addInto(col, dst, image, src, n);
          } else {
            SegmentLoops.scatterAdd(col, dst, image, src, sw, n);
          }
        } else {
          SegmentLoops.fill(col, at, lo, 0f);
          if (sw == 1) {
            SegmentLoops.copy(image, src, col, dst, n);
          } else {
            SegmentLoops.gather(image, src, sw, col, dst, n);
          }
          SegmentLoops.fill(col, at + 4L * hi, run - hi, 0f);
        }
      }
      p += run;
      oh++;
      ow = 0;
    }
  }
}
