package dev.lanes.kernels.reference;

import dev.lanes.kernels.Pool2d;

/**
 * Double-precision references for {@link Pool2d} and {@link dev.lanes.kernels.GlobalPool}, written
 * from the definitions: each output visits its window in scan order (rows top to bottom, each left
 * to right), skipping padding. Max keeps the first maximum, or the last NaN (PyTorch's
 * {@code v > max || isnan(v)}); average divides by the kernel area or by the count of inputs.
 */
public final class PoolReference {
  private PoolReference() {}

  /** Max pooling's output and, per output, the position {@code ih * W + iw} of its argmax. */
  public record Max(double[] y, int[] argmax) {}

  /** One output's window: rows [h0, h1), columns [w0, w1) of the input plane. */
  private interface Window {
    void visit(int plane, int output, int h0, int h1, int w0, int w1);
  }

  private static void windows(Pool2d g, Window window) {
    for (int plane = 0; plane < g.batch() * g.channels(); plane++) {
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++) {
          int top = oh * g.strideH() - g.padH();
          int left = ow * g.strideW() - g.padW();
          window.visit(plane, (plane * g.outHeight() + oh) * g.outWidth() + ow, Math.max(top, 0),
              Math.min(top + g.kernelH(), g.height()), Math.max(left, 0), Math.min(left + g.kernelW(), g.width()));
        }
      }
    }
  }

  public static Max maxForward(Pool2d g, double[] x) {
    double[] y = new double[(int) g.outputFloats()];
    int[] argmax = new int[y.length];
    int planeSize = g.height() * g.width();
    windows(g, (plane, o, h0, h1, w0, w1) -> {
      double best = Double.NEGATIVE_INFINITY;
      int at = h0 * g.width() + w0;
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          double v = x[plane * planeSize + ih * g.width() + iw];
          if (v > best || Double.isNaN(v)) {
            best = v;
            at = ih * g.width() + iw;
          }
        }
      }
      y[o] = best;
      argmax[o] = at;
    });
    return new Max(y, argmax);
  }

  public static double[] maxBackward(Pool2d g, double[] dy, int[] argmax) {
    double[] dx = new double[(int) g.inputFloats()];
    int planeSize = g.height() * g.width();
    int outputs = g.outHeight() * g.outWidth();
    for (int o = 0; o < dy.length; o++) {
      dx[o / outputs * planeSize + argmax[o]] += dy[o];
    }
    return dx;
  }

  public static double[] avgForward(Pool2d g, double[] x, boolean countIncludePad) {
    double[] y = new double[(int) g.outputFloats()];
    int planeSize = g.height() * g.width();
    windows(g, (plane, o, h0, h1, w0, w1) -> {
      double sum = 0;
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          sum += x[plane * planeSize + ih * g.width() + iw];
        }
      }
      y[o] = sum / (countIncludePad ? g.kernelH() * g.kernelW() : (h1 - h0) * (w1 - w0));
    });
    return y;
  }

  public static double[] avgBackward(Pool2d g, double[] dy, boolean countIncludePad) {
    double[] dx = new double[(int) g.inputFloats()];
    int planeSize = g.height() * g.width();
    windows(g, (plane, o, h0, h1, w0, w1) -> {
      double share = dy[o] / (countIncludePad ? g.kernelH() * g.kernelW() : (h1 - h0) * (w1 - w0));
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          dx[plane * planeSize + ih * g.width() + iw] += share;
        }
      }
    });
    return dx;
  }

  /** Global max over each of the {@code planes} runs of {@code positions}: a window of the whole plane. */
  public static Max globalMaxForward(int planes, int positions, double[] x) {
    return maxForward(Pool2d.builder(1, planes, 1, positions).kernel(1, positions).build(), x);
  }

  public static double[] globalMaxBackward(int planes, int positions, double[] dy, int[] argmax) {
    return maxBackward(Pool2d.builder(1, planes, 1, positions).kernel(1, positions).build(), dy, argmax);
  }

  public static double[] globalAvgForward(int planes, int positions, double[] x) {
    return avgForward(Pool2d.builder(1, planes, 1, positions).kernel(1, positions).build(), x, true);
  }

  public static double[] globalAvgBackward(int planes, int positions, double[] dy) {
    return avgBackward(Pool2d.builder(1, planes, 1, positions).kernel(1, positions).build(), dy, true);
  }
}
