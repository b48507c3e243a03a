package dev.lanes.kernels;

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
    int pitch = p1 - p0;
    for (int q = q0; q < q1; q++) {
      walk(g, q, p0, p1, x, xAt, col, colAt + 4L * (q - q0) * pitch, false);
    }
  }

  /**
   * Adds rows [q0, q1) x columns [p0, p1) of a column-matrix gradient into the group's input
   * gradient planes at byte {@code dxAt}: every input element receives the sum of the column
   * entries that were copied from it, in (q, p) order.
   */
  static void drainAdd(Conv2d g, MemorySegment dcol, long dcolAt, int q0, int q1, int p0, int p1,
      MemorySegment dx, long dxAt) {
    int pitch = p1 - p0;
    for (int q = q0; q < q1; q++) {
      walk(g, q, p0, p1, dx, dxAt, dcol, dcolAt + 4L * (q - q0) * pitch, true);
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
