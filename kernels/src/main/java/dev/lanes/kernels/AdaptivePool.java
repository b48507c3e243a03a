package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * Adaptive average and max pooling, PyTorch's {@code adaptive_avg_pool2d} and
 * {@code adaptive_max_pool2d}: {@code [N, C, H, W]} to a fixed {@code [N, C, OH, OW]}, whatever H
 * and W are. Output (i, j) pools input rows {@code [floor(i H / OH), ceil((i + 1) H / OH))} and
 * columns {@code [floor(j W / OW), ceil((j + 1) W / OW))}; neighbouring windows overlap by a row
 * or column when H is not a multiple of OH, and OH may exceed H. All tensors are dense row-major
 * float32 (argmax int32), offsets in elements.
 *
 * <ul>
 *   <li>Average: the window's mean. Backward adds {@code dy / (window area)} to every input of the
 *       window (overlaps add up).
 *   <li>Max: the window's maximum and its position {@code ih * W + iw} in the plane. Windows are
 *       scanned row by row, left to right; a value replaces the max if it is greater, or NaN, so
 *       ties go to the first maximum and NaN propagates, as in {@link Pool2d}. Backward adds dy at
 *       the recorded positions.
 * </ul>
 * Backward passes overwrite dx. Buffers are checked before anything is written.
 *
 * <p>The loops are scalar and run on the calling thread: an adaptive pool usually sits at the head
 * of a network (ResNet's 7 x 7 to 1 x 1, or to a small grid), where the work is a few thousand
 * additions. {@link GlobalPool} is the vectorized special case OH = OW = 1.
 */
public final class AdaptivePool {
  private final int batch;
  private final int channels;
  private final int height;
  private final int width;
  private final int outHeight;
  private final int outWidth;

  private AdaptivePool(int batch, int channels, int height, int width, int outHeight, int outWidth) {
    this.batch = batch;
    this.channels = channels;
    this.height = height;
    this.width = width;
    this.outHeight = outHeight;
    this.outWidth = outWidth;
  }

  /** Pools {@code [batch, channels, height, width]} to {@code [batch, channels, outHeight, outWidth]}; all at least 1. */
  public static AdaptivePool of(int batch, int channels, int height, int width, int outHeight, int outWidth) {
    Checks.positive(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(height, "height");
    Checks.positive(width, "width");
    Checks.positive(outHeight, "outHeight");
    Checks.positive(outWidth, "outWidth");
    if ((long) batch * channels * Math.max((long) height * width, (long) outHeight * outWidth) > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("adaptive pool of [" + batch + "," + channels + "," + height + "," + width
          + "] to " + outHeight + "x" + outWidth + " has more than 2^31 - 1 elements");
    }
    return new AdaptivePool(batch, channels, height, width, outHeight, outWidth);
  }

  /** The first input index of window i of {@code out} over {@code in}: floor(i in / out). */
  public static int start(int i, int in, int out) {
    return (int) ((long) i * in / out);
  }

  /** One past the last input index of window i: ceil((i + 1) in / out). */
  public static int end(int i, int in, int out) {
    return (int) (((long) (i + 1) * in + out - 1) / out);
  }

  public long inputFloats() {
    return (long) batch * channels * height * width;
  }

  public long outputFloats() {
    return (long) batch * channels * outHeight * outWidth;
  }

  public int batch() {
    return batch;
  }

  public int channels() {
    return channels;
  }

  public int height() {
    return height;
  }

  public int width() {
    return width;
  }

  public int outHeight() {
    return outHeight;
  }

  public int outWidth() {
    return outWidth;
  }

  /** {@code y = adaptive_avg_pool(x)}. */
  public void avgForward(MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
    input("x", x, xOffset, false);
    output("y", y, yOffset, true);
    for (int plane = 0; plane < batch * channels; plane++) {
      long xp = 4 * (xOffset + (long) plane * height * width);
      long yp = 4 * (yOffset + (long) plane * outHeight * outWidth);
      for (int oh = 0; oh < outHeight; oh++) {
        int h0 = start(oh, height, outHeight);
        int h1 = end(oh, height, outHeight);
        for (int ow = 0; ow < outWidth; ow++) {
          int w0 = start(ow, width, outWidth);
          int w1 = end(ow, width, outWidth);
          float sum = 0f;
          for (int ih = h0; ih < h1; ih++) {
            for (int iw = w0; iw < w1; iw++) {
              sum += x.get(JAVA_FLOAT_UNALIGNED, xp + 4L * (ih * width + iw));
            }
          }
          y.set(JAVA_FLOAT_UNALIGNED, yp + 4L * (oh * outWidth + ow), sum / ((h1 - h0) * (w1 - w0)));
        }
      }
    }
  }

  /** {@code dx = dL/dx} of the average, from dy; dx is overwritten. */
  public void avgBackward(MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset) {
    output("dy", dy, dyOffset, false);
    input("dx", dx, dxOffset, true);
    for (int plane = 0; plane < batch * channels; plane++) {
      long dxp = 4 * (dxOffset + (long) plane * height * width);
      long dyp = 4 * (dyOffset + (long) plane * outHeight * outWidth);
      SegmentLoops.fill(dx, dxp, height * width, 0f);
      for (int oh = 0; oh < outHeight; oh++) {
        int h0 = start(oh, height, outHeight);
        int h1 = end(oh, height, outHeight);
        for (int ow = 0; ow < outWidth; ow++) {
          int w0 = start(ow, width, outWidth);
          int w1 = end(ow, width, outWidth);
          float share = dy.get(JAVA_FLOAT_UNALIGNED, dyp + 4L * (oh * outWidth + ow)) / ((h1 - h0) * (w1 - w0));
          for (int ih = h0; ih < h1; ih++) {
            for (int iw = w0; iw < w1; iw++) {
              long at = dxp + 4L * (ih * width + iw);
              dx.set(JAVA_FLOAT_UNALIGNED, at, dx.get(JAVA_FLOAT_UNALIGNED, at) + share);
            }
          }
        }
      }
    }
  }

  /** {@code y = adaptive_max_pool(x)}, and each maximum's position in its plane if argmax is not null. */
  public void maxForward(MemorySegment x, long xOffset, MemorySegment y, long yOffset, MemorySegment argmax,
      long argmaxOffset) {
    input("x", x, xOffset, false);
    output("y", y, yOffset, true);
    if (argmax != null) {
      output("argmax", argmax, argmaxOffset, true);
    }
    for (int plane = 0; plane < batch * channels; plane++) {
      long xp = 4 * (xOffset + (long) plane * height * width);
      long out = (long) plane * outHeight * outWidth;
      for (int oh = 0; oh < outHeight; oh++) {
        int h0 = start(oh, height, outHeight);
        int h1 = end(oh, height, outHeight);
        for (int ow = 0; ow < outWidth; ow++) {
          int w0 = start(ow, width, outWidth);
          int w1 = end(ow, width, outWidth);
          float best = Float.NEGATIVE_INFINITY;
          int at = h0 * width + w0;
          for (int ih = h0; ih < h1; ih++) {
            for (int iw = w0; iw < w1; iw++) {
              float v = x.get(JAVA_FLOAT_UNALIGNED, xp + 4L * (ih * width + iw));
              if (v > best || Float.isNaN(v)) {
                best = v;
                at = ih * width + iw;
              }
            }
          }
          long o = out + (long) oh * outWidth + ow;
          y.set(JAVA_FLOAT_UNALIGNED, 4 * (yOffset + o), best);
          if (argmax != null) {
            argmax.set(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + o), at);
          }
        }
      }
    }
  }

  /** {@code dx = dL/dx} of the max, routing dy to the recorded positions; dx is overwritten. */
  public void maxBackward(MemorySegment dy, long dyOffset, MemorySegment argmax, long argmaxOffset, MemorySegment dx,
      long dxOffset) {
    output("dy", dy, dyOffset, false);
    output("argmax", argmax, argmaxOffset, false);
    input("dx", dx, dxOffset, true);
    int plane = height * width;
    int outputs = outHeight * outWidth;
    for (long o = 0; o < outputFloats(); o++) {
      int at = argmax.get(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + o));
      if (at < 0 || at >= plane) {
        throw new IndexOutOfBoundsException("argmax[" + o + "] = " + at + " is outside its plane of " + height + "x"
            + width + " = " + plane + " elements (was it recorded by maxForward of " + this + "?)");
      }
    }
    for (int p = 0; p < batch * channels; p++) {
      long dxp = 4 * (dxOffset + (long) p * plane);
      SegmentLoops.fill(dx, dxp, plane, 0f);
      for (int o = 0; o < outputs; o++) {
        long index = (long) p * outputs + o;
        long at = dxp + 4L * argmax.get(JAVA_INT_UNALIGNED, 4 * (argmaxOffset + index));
        dx.set(JAVA_FLOAT_UNALIGNED, at, dx.get(JAVA_FLOAT_UNALIGNED, at) + dy.get(JAVA_FLOAT_UNALIGNED, 4 * (dyOffset + index)));
      }
    }
  }

  // ---- float[] overloads ----

  /** {@link #avgForward(MemorySegment, long, MemorySegment, long)} on arrays. */
  public void avgForward(float[] x, int xOffset, float[] y, int yOffset) {
    avgForward(Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset);
  }

  /** {@link #avgBackward(MemorySegment, long, MemorySegment, long)} on arrays. */
  public void avgBackward(float[] dy, int dyOffset, float[] dx, int dxOffset) {
    avgBackward(Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset);
  }

  /** {@link #maxForward(MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays; argmax may be null. */
  public void maxForward(float[] x, int xOffset, float[] y, int yOffset, int[] argmax, int argmaxOffset) {
    maxForward(Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset,
        argmax == null ? null : MemorySegment.ofArray(argmax), argmaxOffset);
  }

  /** {@link #maxBackward(MemorySegment, long, MemorySegment, long, MemorySegment, long)} on arrays. */
  public void maxBackward(float[] dy, int dyOffset, int[] argmax, int argmaxOffset, float[] dx, int dxOffset) {
    maxBackward(Checks.array(dy, "dy"), dyOffset, MemorySegment.ofArray(Checks.notNull(argmax, "argmax")),
        argmaxOffset, Checks.array(dx, "dx"), dxOffset);
  }

  private void input(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,H,W]", batch, channels, height, width, offset, Checks.floats(s));
  }

  private void output(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,OH,OW]", batch, channels, outHeight, outWidth, offset, Checks.floats(s));
  }

  @Override
  public String toString() {
    return "AdaptivePool[" + batch + "x" + channels + "x" + height + "x" + width + " -> " + outHeight + "x"
        + outWidth + "]";
  }
}
