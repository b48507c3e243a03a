package dev.lanes.kernels.reference;

import dev.lanes.kernels.Conv2d;

/**
 * Double-precision references for {@link Conv2d}, written straight from the definition: every
 * output element is a sum over its taps,
 * {@code y[n][k][oh][ow] = b[k] + sum over c, r, s of w[k][c][r][s] * x[n][grp*C/G + c][ih][iw]}
 * with {@code ih = oh*sh - ph + r*dh}, {@code iw = ow*sw - pw + s*dw}, taps in the padding left
 * out, {@code grp = k / (K/G)}.
 *
 * <p>All three passes visit the same (output, input, weight) index triples; each pass is the
 * derivative of the forward with respect to one operand: {@code dx[xi] += w[wi] * dy[yi]},
 * {@code dw[wi] += dy[yi] * x[xi]}, {@code db[k] += dy[yi]}. Slow and obvious on purpose.
 */
public final class ConvReference {
  private ConvReference() {}

  /** One tap: output element yi, input element xi and weight element wi meet. */
  private interface Tap {
    void visit(int yi, int xi, int wi);
  }

  /** {@code y = conv(x, w) + b}; {@code b} may be null. */
  public static double[] forward(Conv2d g, double[] x, double[] w, double[] b) {
    double[] y = new double[(int) g.outputFloats()];
    if (b != null) {
      int positions = g.outHeight() * g.outWidth();
      for (int i = 0; i < y.length; i++) {
        y[i] = b[i / positions % g.filters()];
      }
    }
    taps(g, (yi, xi, wi) -> y[yi] += w[wi] * x[xi]);
    return y;
  }

  /** {@code dx = dL/dx} given {@code dy = dL/dy}. */
  public static double[] backwardData(Conv2d g, double[] dy, double[] w) {
    double[] dx = new double[(int) g.inputFloats()];
    taps(g, (yi, xi, wi) -> dx[xi] += w[wi] * dy[yi]);
    return dx;
  }

  /** {@code dw = dL/dw} given the input and {@code dy}, summed over the batch. */
  public static double[] backwardWeights(Conv2d g, double[] x, double[] dy) {
    double[] dw = new double[(int) g.weightFloats()];
    taps(g, (yi, xi, wi) -> dw[wi] += dy[yi] * x[xi]);
    return dw;
  }

  /** {@code db[k] = sum over n, oh, ow of dy[n][k][oh][ow]}. */
  public static double[] backwardBias(Conv2d g, double[] dy) {
    double[] db = new double[g.filters()];
    int positions = g.outHeight() * g.outWidth();
    for (int i = 0; i < dy.length; i++) {
      db[i / positions % g.filters()] += dy[i];
    }
    return db;
  }

  private static void taps(Conv2d g, Tap tap) {
    int kPerGroup = g.filters() / g.groups();
    int cPerGroup = g.channels() / g.groups();
    for (int n = 0; n < g.batch(); n++) {
      for (int k = 0; k < g.filters(); k++) {
        int grp = k / kPerGroup;
        for (int oh = 0; oh < g.outHeight(); oh++) {
          for (int ow = 0; ow < g.outWidth(); ow++) {
            int yi = ((n * g.filters() + k) * g.outHeight() + oh) * g.outWidth() + ow;
            for (int c = 0; c < cPerGroup; c++) {
              for (int r = 0; r < g.kernelH(); r++) {
                int ih = oh * g.strideH() - g.padH() + r * g.dilationH();
                if (ih < 0 || ih >= g.height()) {
                  continue;
                }
                for (int s = 0; s < g.kernelW(); s++) {
                  int iw = ow * g.strideW() - g.padW() + s * g.dilationW();
                  if (iw < 0 || iw >= g.width()) {
                    continue;
                  }
                  int xi = ((n * g.channels() + grp * cPerGroup + c) * g.height() + ih) * g.width() + iw;
                  int wi = ((k * cPerGroup + c) * g.kernelH() + r) * g.kernelW() + s;
                  tap.visit(yi, xi, wi);
                }
              }
            }
          }
        }
      }
    }
  }
}
