package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * 2-D max and average pooling with PyTorch's {@code max_pool2d} / {@code avg_pool2d} semantics
 * (ceil_mode off, no dilation), forward and backward.
 *
 * <h2>Layout</h2>
 * Input {@code [N, C, H, W]}, output {@code [N, C, Hout, Wout]}, dense row-major float32, with
 * {@code Hout = floor((H + 2*padH - kernelH) / strideH) + 1}, Wout likewise. The argmax of max
 * pooling is an int32 tensor of the output's shape holding, as PyTorch's indices do, the position
 * {@code ih * W + iw} of the chosen input within its plane.
 *
 * <h2>Semantics</h2>
 * <ul>
 *   <li>Max: padding acts as -inf (it never wins). A tie goes to the first maximum in window scan
 *       order (rows top to bottom, each left to right). A NaN in the window makes the output NaN,
 *       and the index is that of the window's last NaN, as PyTorch's CPU kernel does (its rule is
 *       {@code v > max || isnan(v)}). Backward adds each output gradient to its recorded argmax.
 *   <li>Average: the sum over the window divided by {@code kernelH*kernelW} when
 *       {@code countIncludePad}, else by the number of window elements inside the input.
 *       Backward spreads each output gradient, so divided, over its window.
 * </ul>
 * As in PyTorch, padding may be at most half the kernel, so every window holds an input element.
 * Backward passes overwrite dx.
 *
 * <h2>Computation</h2>
 * Forward runs vectorized across an output row for strides 1 and 2 (stride 2 loads two vectors and
 * keeps the even lanes with a two-vector permute), and scalar for larger strides; edges are masked
 * loads filled with the padding value. Backward scatters, scalar, because windows overlap. Threads
 * split the N*C planes, so results do not depend on the thread count.
 */
public final class Pool2d {
  final int batch;
  final int channels;
  final int height;
  final int width;
  final int kernelH;
  final int kernelW;
  final int strideH;
  final int strideW;
  final int padH;
  final int padW;
  final int outHeight;
  final int outWidth;

  private Pool2d(Builder b) {
    batch = b.batch;
    channels = b.channels;
    height = b.height;
    width = b.width;
    kernelH = b.kernelH;
    kernelW = b.kernelW;
    strideH = b.strideH == 0 ? b.kernelH : b.strideH;
    strideW = b.strideW == 0 ? b.kernelW : b.strideW;
    padH = b.padH;
    padW = b.padW;
    outHeight = (height + 2 * padH - kernelH) / strideH + 1;
    outWidth = (width + 2 * padW - kernelW) / strideW + 1;
  }

  /** Starts a description of pooling over a {@code [batch, channels, height, width]} input. */
  public static Builder builder(int batch, int channels, int height, int width) {
    return new Builder(batch, channels, height, width);
  }

  /** Collects the attributes of a {@link Pool2d}; {@link #build()} validates them all at once. */
  public static final class Builder {
    private final int batch;
    private final int channels;
    private final int height;
    private final int width;
    private int kernelH = -1;
    private int kernelW = -1;
    private int strideH;
    private int strideW;
    private int padH;
    private int padW;

    private Builder(int batch, int channels, int height, int width) {
      this.batch = batch;
      this.channels = channels;
      this.height = height;
      this.width = width;
    }

    /** The window's height and width (required). */
    public Builder kernel(int kernelH, int kernelW) {
      this.kernelH = kernelH;
      this.kernelW = kernelW;
      return this;
    }

    /** Strides; the kernel size by default, as in PyTorch. */
    public Builder stride(int strideH, int strideW) {
      Checks.positive(strideH, "strideH");
      Checks.positive(strideW, "strideW");
      this.strideH = strideH;
      this.strideW = strideW;
      return this;
    }

    /** Padding on each side; 0 by default; at most half the kernel. */
    public Builder padding(int padH, int padW) {
      this.padH = padH;
      this.padW = padW;
      return this;
    }

    public Pool2d build() {
      Checks.positive(batch, "batch");
      Checks.positive(channels, "channels");
      Checks.positive(height, "height");
      Checks.positive(width, "width");
      Checks.positive(kernelH, "kernelH");
      Checks.positive(kernelW, "kernelW");
      Checks.nonNegative(padH, "padH");
      Checks.nonNegative(padW, "padW");
      if (2 * padH > kernelH || 2 * padW > kernelW) {
        throw new IllegalArgumentException("padding " + padH + "x" + padW + " must be at most half the kernel "
            + kernelH + "x" + kernelW);
      }
      if (height + 2 * padH < kernelH || width + 2 * padW < kernelW) {
        throw new IllegalArgumentException("output would be empty: input " + height + "x" + width + " with padding "
            + padH + "x" + padW + " is smaller than the kernel " + kernelH + "x" + kernelW);
      }
      if ((long) height * width > Integer.MAX_VALUE) {
        throw new IllegalArgumentException("a plane of " + height + "x" + width + " must stay under 2^31 floats");
      }
      return new Pool2d(this);
    }
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

  public int kernelH() {
    return kernelH;
  }

  public int kernelW() {
    return kernelW;
  }

  public int strideH() {
    return strideH;
  }

  public int strideW() {
    return strideW;
  }

  public int padH() {
    return padH;
  }

  public int padW() {
    return padW;
  }

  public int outHeight() {
    return outHeight;
  }

  public int outWidth() {
    return outWidth;
  }

  public long inputFloats() {
    return (long) batch * channels * height * width;
  }

  public long outputFloats() {
    return (long) batch * channels * outHeight * outWidth;
  }

  // ---- max ----

  /** {@code y = max_pool(x)}; records each output's argmax in {@code argmax} unless it is null. */
  public void maxForward(MemorySegment x, long xOffset, MemorySegment y, long yOffset, MemorySegment argmax,
      long argmaxOffset, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    input("x", x, xOffset, false);
    output("y", y, yOffset, true);
    if (argmax != null) {
      output("argmax", argmax, argmaxOffset, true);
    }
    PoolTask.run(PoolTask.MAX_FORWARD, this, x, xOffset, y, yOffset, argmax, argmaxOffset, false, parallelism);
  }

  /** {@code dx = dL/dx}: each {@code dy} added at its recorded argmax, zero elsewhere. */
  public void maxBackward(MemorySegment dy, long dyOffset, MemorySegment argmax, long argmaxOffset,
      MemorySegment dx, long dxOffset, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    output("dy", dy, dyOffset, false);
    output("argmax", argmax, argmaxOffset, false);
    input("dx", dx, dxOffset, true);
    PoolTask.run(PoolTask.MAX_BACKWARD, this, dy, dyOffset, dx, dxOffset, argmax, argmaxOffset, false, parallelism);
  }

  /** {@code y = max_pool(x)} on arrays; {@code argmax} may be null. */
  public void maxForward(float[] x, int xOffset, float[] y, int yOffset, int[] argmax, int argmaxOffset) {
    maxForward(Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset,
        argmax == null ? null : MemorySegment.ofArray(argmax), argmaxOffset, Parallelism.getDefault());
  }

  /** {@code dx = dL/dx} on arrays. */
  public void maxBackward(float[] dy, int dyOffset, int[] argmax, int argmaxOffset, float[] dx, int dxOffset) {
    maxBackward(Checks.array(dy, "dy"), dyOffset, MemorySegment.ofArray(Checks.notNull(argmax, "argmax")), argmaxOffset,
        Checks.array(dx, "dx"), dxOffset, Parallelism.getDefault());
  }

  // ---- average ----

  /** {@code y = avg_pool(x)}. */
  public void avgForward(MemorySegment x, long xOffset, MemorySegment y, long yOffset, boolean countIncludePad,
      Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    input("x", x, xOffset, false);
    output("y", y, yOffset, true);
    PoolTask.run(PoolTask.AVG_FORWARD, this, x, xOffset, y, yOffset, null, 0, countIncludePad, parallelism);
  }

  /** {@code dx = dL/dx} of average pooling. */
  public void avgBackward(MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset, boolean countIncludePad,
      Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    output("dy", dy, dyOffset, false);
    input("dx", dx, dxOffset, true);
    PoolTask.run(PoolTask.AVG_BACKWARD, this, dy, dyOffset, dx, dxOffset, null, 0, countIncludePad, parallelism);
  }

  /** {@code y = avg_pool(x)} on arrays. */
  public void avgForward(float[] x, int xOffset, float[] y, int yOffset, boolean countIncludePad) {
    avgForward(Checks.array(x, "x"), xOffset, Checks.array(y, "y"), yOffset, countIncludePad, Parallelism.getDefault());
  }

  /** {@code dx = dL/dx} of average pooling, on arrays. */
  public void avgBackward(float[] dy, int dyOffset, float[] dx, int dxOffset, boolean countIncludePad) {
    avgBackward(Checks.array(dy, "dy"), dyOffset, Checks.array(dx, "dx"), dxOffset, countIncludePad, Parallelism.getDefault());
  }

  private void input(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,H,W]", batch, channels, height, width, offset, Checks.floats(s));
  }

  private void output(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,Hout,Wout]", batch, channels, outHeight, outWidth, offset, Checks.floats(s));
  }


  @Override
  public String toString() {
    return "Pool2d[N=" + batch + ", C=" + channels + ", H=" + height + ", W=" + width + ", kernel=" + kernelH + "x"
        + kernelW + ", stride=" + strideH + "x" + strideW + ", padding=" + padH + "x" + padW + ", out=" + outHeight
        + "x" + outWidth + "]";
  }
}
