package dev.lanes.kernels.reference;

import dev.lanes.kernels.AdaptivePool;
import dev.lanes.kernels.Pool2d;

/**
 * Double-precision references for {@link Pool2d}, {@link AdaptivePool} and
 * {@link dev.lanes.kernels.GlobalPool}, written
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

  /** Calls a {@link Window} for every output of a pooling, in output order. */
  private interface Windows {
    void each(Window window);
  }

  /** The divisor of an average over a window. */
  private interface Count {
    int of(int h0, int h1, int w0, int w1);
  }

  private static Windows windows(Pool2d g) {
    return window -> {
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
    };
  }

  /** Adaptive windows: rows [floor(oh H / OH), ceil((oh + 1) H / OH)), columns likewise. */
  private static Windows windows(AdaptivePool g) {
    return window -> {
      for (int plane = 0; plane < g.batch() * g.channels(); plane++) {
        for (int oh = 0; oh < g.outHeight(); oh++) {
          for (int ow = 0; ow < g.outWidth(); ow++) {
            window.visit(plane, (plane * g.outHeight() + oh) * g.outWidth() + ow,
                (int) Math.floor((double) oh * g.height() / g.outHeight()),
                (int) Math.ceil((double) (oh + 1) * g.height() / g.outHeight()),
                (int) Math.floor((double) ow * g.width() / g.outWidth()),
                (int) Math.ceil((double) (ow + 1) * g.width() / g.outWidth()));
          }
        }
      }
    };
  }

  public static Max maxForward(Pool2d g, double[] x) {
    return max(windows(g), (int) g.outputFloats(), g.height(), g.width(), x);
  }

  public static double[] maxBackward(Pool2d g, double[] dy, int[] argmax) {
    return maxBackward((int) g.inputFloats(), g.height() * g.width(), g.outHeight() * g.outWidth(), dy, argmax);
  }

  public static double[] avgForward(Pool2d g, double[] x, boolean countIncludePad) {
    return avgForward(windows(g), (int) g.outputFloats(), g.height(), g.width(), divisor(g, countIncludePad), x);
  }

  public static double[] avgBackward(Pool2d g, double[] dy, boolean countIncludePad) {
    return avgBackward(windows(g), (int) g.inputFloats(), g.height(), g.width(), divisor(g, countIncludePad), dy);
  }

  public static Max adaptiveMaxForward(AdaptivePool g, double[] x) {
    return max(windows(g), (int) g.outputFloats(), g.height(), g.width(), x);
  }

  public static double[] adaptiveMaxBackward(AdaptivePool g, double[] dy, int[] argmax) {
    return maxBackward((int) g.inputFloats(), g.height() * g.width(), g.outHeight() * g.outWidth(), dy, argmax);
  }

  public static double[] adaptiveAvgForward(AdaptivePool g, double[] x) {
    return avgForward(windows(g), (int) g.outputFloats(), g.height(), g.width(), PoolReference::area, x);
  }

  public static double[] adaptiveAvgBackward(AdaptivePool g, double[] dy) {
    return avgBackward(windows(g), (int) g.inputFloats(), g.height(), g.width(), PoolReference::area, dy);
  }

  private static int area(int h0, int h1, int w0, int w1) {
    return (h1 - h0) * (w1 - w0);
  }

  private static Count divisor(Pool2d g, boolean countIncludePad) {
    return countIncludePad ? (h0, h1, w0, w1) -> g.kernelH() * g.kernelW() : PoolReference::area;
  }

  private static Max max(Windows windows, int outputs, int height, int width, double[] x) {
    double[] y = new double[outputs];
    int[] argmax = new int[outputs];
    int planeSize = height * width;
    windows.each((plane, o, h0, h1, w0, w1) -> {
      double best = Double.NEGATIVE_INFINITY;
      int at = h0 * width + w0;
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          double v = x[plane * planeSize + ih * width + iw];
          if (v > best || Double.isNaN(v)) {
            best = v;
            at = ih * width + iw;
          }
        }
      }
      y[o] = best;
      argmax[o] = at;
    });
    return new Max(y, argmax);
  }

  private static double[] maxBackward(int inputs, int planeSize, int outputsPerPlane, double[] dy, int[] argmax) {
    double[] dx = new double[inputs];
    for (int o = 0; o < dy.length; o++) {
      dx[o / outputsPerPlane * planeSize + argmax[o]] += dy[o];
    }
    return dx;
  }

  private static double[] avgForward(Windows windows, int outputs, int height, int width, Count count, double[] x) {
    double[] y = new double[outputs];
    int planeSize = height * width;
    windows.each((plane, o, h0, h1, w0, w1) -> {
      double sum = 0;
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          sum += x[plane * planeSize + ih * width + iw];
        }
      }
      y[o] = sum / count.of(h0, h1, w0, w1);
    });
    return y;
  }

  private static double[] avgBackward(Windows windows, int inputs, int height, int width, Count count, double[] dy) {
    double[] dx = new double[inputs];
    int planeSize = height * width;
    windows.each((plane, o, h0, h1, w0, w1) -> {
      double share = dy[o] / count.of(h0, h1, w0, w1);
      for (int ih = h0; ih < h1; ih++) {
        for (int iw = w0; iw < w1; iw++) {
          dx[plane * planeSize + ih * width + iw] += share;
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
