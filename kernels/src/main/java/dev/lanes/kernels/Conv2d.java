package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * 2-D convolution (cross-correlation, as in every deep-learning framework) with PyTorch's
 * {@code conv2d} semantics, forward and backward, computed as im2col plus {@link Gemm}.
 *
 * <h2>Layout</h2>
 * All tensors are dense, row-major, float32, addressed by an element offset into a segment or
 * array:
 * <ul>
 *   <li>input x: {@code [N, C, H, W]};
 *   <li>weight w: {@code [K, C/groups, R, S]} (PyTorch's layout, so weights move between them);
 *   <li>bias b: {@code [K]}, optional;
 *   <li>output y: {@code [N, K, Hout, Wout]}, with
 *       {@code Hout = floor((H + 2*padH - dilationH*(R-1) - 1) / strideH) + 1}, Wout likewise.
 * </ul>
 * Gradients have the shapes of what they are gradients of.
 *
 * <h2>Use</h2>
 * A {@code Conv2d} is an immutable, validated description of one convolution (a "primitive" in
 * oneDNN's terms), built once and used for every call:
 * <pre>{@code
 * Conv2d conv = Conv2d.builder(32, 64, 56, 56).filters(64).kernel(3, 3).padding(1, 1).build();
 * conv.forward(x, 0, w, 0, b, 0, y, 0);
 * }</pre>
 *
 * <h2>Computation</h2>
 * For each image and group, {@code Y_g = W_g * col(X_g)}, where the column matrix has one row per
 * (channel, r, s) and one column per output position (see {@link Im2col}). The column matrix is
 * built in chunks of output positions that fit in L2, so the GEMM packs each chunk from L2
 * right after im2col wrote it (the weight gradient's chunks are twice as deep: see
 * {@code weightChunk}). A 1x1 kernel with stride 1 and no padding uses the input itself as
 * the column matrix. Backward:
 * <ul>
 *   <li>data, stride 1 with at least 4 channels per group and padding no larger than the dilated
 *       kernel's reach {@code dilation*(R-1)} (a ResNet 3x3 block): a forward convolution of dY
 *       with the weights' filters and channels swapped and their taps reversed, padded by
 *       {@code dilation*(R-1) - padding};
 *   <li>data, otherwise: {@code dcol = W_gᵀ * dY_g} per chunk, then col2im adds every entry back
 *       into the input position it was copied from;
 *   <li>weights: {@code dW_g = sum over images and chunks of dY_g * colᵀ};
 *   <li>bias: {@code db[k] = sum over n, oh, ow of dY[n, k, oh, ow]}.
 * </ul>
 * Each gradient is its own call, so a frozen layer or a first layer skips what it does not need.
 * Gradients overwrite their output (they do not accumulate into it).
 *
 * <h2>Workspace</h2>
 * im2col (and the data gradient's reversed weights) needs {@link #workspaceFloats(int)} floats for a call on that many threads. Calls that
 * take a {@code workspace} use the one given (it must be at least that large and, for more than
 * one thread, shareable between threads); calls without one use a buffer kept per calling thread
 * and reused, so a call is meant to allocate nothing in steady state (JMH's {@code -prof gc}
 * shows about 1-2 KB per 100 ms call, in line with its own per-iteration overhead; the calling
 * thread's counter has not yet been read for these paths).
 *
 * <h2>Threads</h2>
 * Forward and backward-data split the batch: each thread takes whole images. With fewer images
 * than threads the images run in order and the GEMMs split their blocks instead. Backward-weights
 * splits the rows of the column matrix (the columns of dW), so no sum is ever split. Results are
 * bitwise identical for any thread count.
 *
 * <h2>Accuracy</h2>
 * Each output is a float32 dot product of length {@code L = (C/groups)*R*S} accumulated with FMAs,
 * so {@code |y - y_exact| <= 4 L u (sum |w||x| + |b|)} with {@code u = 2^-24}; the weight and bias
 * gradients sum {@code N*Hout*Wout} terms; the data gradient is one dot of {@code (K/groups)*R*S}
 * terms when it runs as a forward convolution, else {@code K/groups} terms per tap added over up to
 * {@code R*S} taps; each with the same form of bound.
 *
 * <h2>Errors</h2>
 * {@link Builder#build()} rejects non-positive sizes, channels or filters not divisible by groups,
 * and an output smaller than 1x1, naming the numbers. Every call checks its buffers (null, closed,
 * read-only outputs, too small for the tensor at its offset, too small a workspace) before reading
 * or writing anything.
 */
public final class Conv2d {
  final int batch;
  final int channels;
  final int height;
  final int width;
  final int filters;
  final int kernelH;
  final int kernelW;
  final int strideH;
  final int strideW;
  final int padH;
  final int padW;
  final int dilationH;
  final int dilationW;
  final int groups;
  final int outHeight;
  final int outWidth;
  /** Rows of one group's column matrix: (C/groups) * R * S. */
  final int colRows;
  /** Output positions per im2col chunk; fixed by the shape, so the sums' order never changes. */
  final int chunk;
  /**
   * Output positions per im2col chunk of the weight gradient, where the chunk is the depth of each
   * GEMM call and every call reads and rewrites all of this thread's share of dW: twice as deep as
   * {@link #chunk} (a budget of twice L2). Measured on a Zen 3 machine (512 KiB L2, ResNet 3x3
   * block): budgets of 256 KiB, 512 KiB, 1 MiB and 8 MiB ran at 42, 43, 45-51 and 41 GFLOPS
   * on two threads, and the 1 MiB one 5% ahead of 256 KiB on one.
   */
  final int weightChunk;
  /**
   * The data gradient as a forward convolution, or null when it is computed by col2im: for stride
   * 1, {@code dx = conv(dy, w')} with the filters and channels of w swapped and its taps reversed,
   * and padding {@code dilation*(R-1) - padding}, so each dx element is one GEMM dot over
   * (K/groups)*R*S terms and nothing is scatter-added.
   */
  final Conv2d dataConv;
  /** Fewest channels per group for which the data gradient runs as a forward convolution. */
  static final int DATA_AS_FORWARD_MIN_CHANNELS = 4;

  private Conv2d(Builder b, boolean withDataConv) {
    batch = b.batch;
    channels = b.channels;
    height = b.height;
    width = b.width;
    filters = b.filters;
    kernelH = b.kernelH;
    kernelW = b.kernelW;
    strideH = b.strideH;
    strideW = b.strideW;
    padH = b.padH;
    padW = b.padW;
    dilationH = b.dilationH;
    dilationW = b.dilationW;
    groups = b.groups;
    outHeight = outputSize(height, kernelH, strideH, padH, dilationH);
    outWidth = outputSize(width, kernelW, strideW, padW, dilationW);
    colRows = channels / groups * kernelH * kernelW;
    chunk = chunkFor(colRows, outHeight * outWidth, 1);
    weightChunk = chunkFor(colRows, outHeight * outWidth, 2);
    dataConv = withDataConv && dataAsForward() ? new Conv2d(dataDescription(), false) : null;
  }

  /** The forward convolution that computes this one's data gradient (see {@link #dataConv}). */
  private Builder dataDescription() {
    return new Builder(batch, filters, outHeight, outWidth).filters(channels).kernel(kernelH, kernelW)
        .padding(dilationH * (kernelH - 1) - padH, dilationW * (kernelW - 1) - padW)
        .dilation(dilationH, dilationW).groups(groups);
  }

  /**
   * Whether the data gradient runs as a forward convolution: stride 1 (so every dy tap lands on
   * the dx grid), padding at most the dilated kernel's reach (so the reversed convolution's
   * padding is not negative), not a direct 1x1 (which needs no col2im anyway), and at least
   * {@link #DATA_AS_FORWARD_MIN_CHANNELS} channels per group, the row count of its GEMM: with
   * fewer, most of every register tile (4 rows on AVX2) would be idle, and the col2im GEMM
   * (K/groups deep, (C/groups)*R*S rows) does better.
   *
   * <p>Why: col2im's GEMM is only K/groups deep (64 for a ResNet block), so each register tile is
   * stored after few FMAs, and col2im then reads and rewrites dx once per tap. Measured on a Zen 3
   * core (ResNet 3x3 block, one thread): 29 GFLOPS by col2im against 48 for the forward pass.
   */
  boolean dataAsForward() {
    return strideH == 1 && strideW == 1 && !direct()
        && padH <= dilationH * (kernelH - 1) && padW <= dilationW * (kernelW - 1)
        && channels / groups >= DATA_AS_FORWARD_MIN_CHANNELS;
  }

  private static int outputSize(int in, int kernel, int stride, int pad, int dilation) {
    long span = (long) in + 2L * pad - (long) dilation * (kernel - 1) - 1;
    return span < 0 ? 0 : (int) (span / stride + 1);
  }

  /**
   * Output positions per im2col chunk: as many as keep the chunk in {@code budgets} times L2 (one:
   * there it is written, then read back by the GEMM's packing), at least one NR panel, at most one
   * image. Why all of L2 and not half: with the GEMM's KC = 128 and 32-column NR on AVX2, a chunk is
   * one GEMM call, and a wider call spreads its per-call and per-stage costs (packing all of the
   * weights again; the GEMM then also met at a barrier per stage) over more columns. Measured on
   * the Zen 3 machine, ResNet's 3x3 layer, 8 images, alternating in one JVM, median speed at
   * 512 KiB over 256 KiB: forward 1.10 (one thread) and 1.09 (two), data gradient 1.08 and 1.07;
   * 1 MiB over 512 KiB: forward 0.98, data gradient 1.02.
   */
  private static int chunkFor(int rows, int positions, int budgets) {
    long budget = budgets * Long.getLong("lanes.conv.chunkBytes", GemmBlocking.L2_BYTES);
    long fit = budget / (4L * rows);
    long rounded = Math.max(GemmMicroKernel.NR, fit / GemmMicroKernel.NR * GemmMicroKernel.NR);
    return (int) Math.min(positions, rounded);
  }

  /** Starts a description of a convolution over a {@code [batch, channels, height, width]} input. */
  public static Builder builder(int batch, int channels, int height, int width) {
    return new Builder(batch, channels, height, width);
  }

  /** Collects the attributes of a {@link Conv2d}; {@link #build()} validates them all at once. */
  public static final class Builder {
    private final int batch;
    private final int channels;
    private final int height;
    private final int width;
    private int filters = -1;
    private int kernelH = -1;
    private int kernelW = -1;
    private int strideH = 1;
    private int strideW = 1;
    private int padH;
    private int padW;
    private int dilationH = 1;
    private int dilationW = 1;
    private int groups = 1;

    private Builder(int batch, int channels, int height, int width) {
      this.batch = batch;
      this.channels = channels;
      this.height = height;
      this.width = width;
    }

    /** The number of output channels K (required). */
    public Builder filters(int filters) {
      this.filters = filters;
      return this;
    }

    /** The kernel's height R and width S (required). */
    public Builder kernel(int kernelH, int kernelW) {
      this.kernelH = kernelH;
      this.kernelW = kernelW;
      return this;
    }

    /** Strides; 1 by default. */
    public Builder stride(int strideH, int strideW) {
      this.strideH = strideH;
      this.strideW = strideW;
      return this;
    }

    /** Zero padding on each side; 0 by default. */
    public Builder padding(int padH, int padW) {
      this.padH = padH;
      this.padW = padW;
      return this;
    }

    /** Dilations; 1 by default. */
    public Builder dilation(int dilationH, int dilationW) {
      this.dilationH = dilationH;
      this.dilationW = dilationW;
      return this;
    }

    /** Channel groups; 1 by default, C for a depthwise convolution. */
    public Builder groups(int groups) {
      this.groups = groups;
      return this;
    }

    public Conv2d build() {
      Checks.positive(batch, "batch");
      Checks.positive(channels, "channels");
      Checks.positive(height, "height");
      Checks.positive(width, "width");
      if (filters == -1 || kernelH == -1) {
        throw new IllegalArgumentException("filters and kernel must be set (filters = " + filters
            + ", kernel = " + kernelH + "x" + kernelW + ")");
      }
      Checks.positive(filters, "filters");
      Checks.positive(kernelH, "kernelH");
      Checks.positive(kernelW, "kernelW");
      Checks.positive(strideH, "strideH");
      Checks.positive(strideW, "strideW");
      Checks.nonNegative(padH, "padH");
      Checks.nonNegative(padW, "padW");
      Checks.positive(dilationH, "dilationH");
      Checks.positive(dilationW, "dilationW");
      Checks.positive(groups, "groups");
      if (channels % groups != 0 || filters % groups != 0) {
        throw new IllegalArgumentException("channels = " + channels + " and filters = " + filters
            + " must both be divisible by groups = " + groups);
      }
      int outH = outputSize(height, kernelH, strideH, padH, dilationH);
      int outW = outputSize(width, kernelW, strideW, padW, dilationW);
      if (outH < 1 || outW < 1) {
        throw new IllegalArgumentException("output would be " + outH + "x" + outW + ": input " + height + "x"
            + width + " with padding " + padH + "x" + padW + " is smaller than the dilated kernel "
            + ((long) dilationH * (kernelH - 1) + 1) + "x" + ((long) dilationW * (kernelW - 1) + 1));
      }
      long limit = Integer.MAX_VALUE;
      if ((long) outH * outW > limit || (long) channels / groups * kernelH * kernelW > limit
          || (long) channels * height * width > limit || (long) filters * outH * outW > limit) {
        throw new IllegalArgumentException("a single image's planes must stay under 2^31 floats");
      }
      return new Conv2d(this, true);
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

  public int filters() {
    return filters;
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

  public int dilationH() {
    return dilationH;
  }

  public int dilationW() {
    return dilationW;
  }

  public int groups() {
    return groups;
  }

  public int outHeight() {
    return outHeight;
  }

  public int outWidth() {
    return outWidth;
  }

  /** Floats in x (and dx): N*C*H*W. */
  public long inputFloats() {
    return (long) batch * channels * height * width;
  }

  /** Floats in w (and dw): K*(C/groups)*R*S. */
  public long weightFloats() {
    return (long) filters * colRows;
  }

  /** Floats in y (and dy): N*K*Hout*Wout. */
  public long outputFloats() {
    return (long) batch * filters * outHeight * outWidth;
  }

  /** Multiply-adds times two of one forward pass: 2*N*K*(C/groups)*R*S*Hout*Wout. */
  public long flops() {
    return 2L * batch * filters * colRows * outHeight * outWidth;
  }

  /** Whether the input is its own column matrix: a 1x1 kernel, stride 1, no padding. */
  boolean direct() {
    return kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0;
  }

  /** Floats of workspace any call needs on up to {@code threads} threads (0 if it needs none). */
  public long workspaceFloats(int threads) {
    Checks.positive(threads, "threads");
    // Column chunks, and for the weight gradient dWᵀ ahead of them (see ConvTask.weights).
    long columns = direct() ? 0 : Math.max((long) threads * colRows * chunk,
        weightFloats() + (long) threads * colRows * weightChunk);
    // The data gradient's reversed weights, then its own column chunks.
    return dataConv == null ? columns : Math.max(columns, weightFloats() + dataConv.workspaceFloats(threads));
  }

  // ---- forward ----

  /** {@code y = conv(x, w) + b} with the default parallelism and a reused per-thread workspace. */
  public void forward(MemorySegment x, long xOffset, MemorySegment w, long wOffset,
      MemorySegment bias, long biasOffset, MemorySegment y, long yOffset) {
    forward(x, xOffset, w, wOffset, bias, biasOffset, y, yOffset, null, Parallelism.getDefault());
  }

  /**
   * {@code y = conv(x, w) + b}. {@code bias} may be null (no bias). {@code workspace} may be null
   * (a reused per-thread buffer); otherwise it needs {@link #workspaceFloats(int)} floats for
   * {@code parallelism.threads()} threads.
   */
  public void forward(MemorySegment x, long xOffset, MemorySegment w, long wOffset,
      MemorySegment bias, long biasOffset, MemorySegment y, long yOffset,
      MemorySegment workspace, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    input("x", x, xOffset, false);
    weight("w", w, wOffset, false);
    if (bias != null) {
      bias("bias", bias, biasOffset, false);
    }
    output("y", y, yOffset, true);
    checkWorkspace(workspace, parallelism);
    ConvTask.run(this, ConvTask.FORWARD, x, xOffset, w, wOffset, bias, biasOffset, y, yOffset,
        workspace, parallelism);
  }

  /** {@code y = conv(x, w) + b} on arrays; {@code bias} may be null. */
  public void forward(float[] x, int xOffset, float[] w, int wOffset, float[] bias, int biasOffset,
      float[] y, int yOffset) {
    forward(x, xOffset, w, wOffset, bias, biasOffset, y, yOffset, Parallelism.getDefault());
  }

  /** {@code y = conv(x, w) + b} on arrays on up to {@code parallelism} threads; {@code bias} may be null. */
  public void forward(float[] x, int xOffset, float[] w, int wOffset, float[] bias, int biasOffset,
      float[] y, int yOffset, Parallelism parallelism) {
    forward(Checks.array(x, "x"), xOffset, Checks.array(w, "w"), wOffset, bias == null ? null : MemorySegment.ofArray(bias),
        biasOffset, Checks.array(y, "y"), yOffset, null, parallelism);
  }

  // ---- backward: data ----

  /** {@code dx = dL/dx} from {@code dy = dL/dy} and the weights; overwrites dx. */
  public void backwardData(MemorySegment dy, long dyOffset, MemorySegment w, long wOffset,
      MemorySegment dx, long dxOffset) {
    backwardData(dy, dyOffset, w, wOffset, dx, dxOffset, null, Parallelism.getDefault());
  }

  /** {@code dx = dL/dx}; {@code workspace} as for {@link #forward}. */
  public void backwardData(MemorySegment dy, long dyOffset, MemorySegment w, long wOffset,
      MemorySegment dx, long dxOffset, MemorySegment workspace, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    output("dy", dy, dyOffset, false);
    weight("w", w, wOffset, false);
    input("dx", dx, dxOffset, true);
    checkWorkspace(workspace, parallelism);
    ConvTask.run(this, ConvTask.BACKWARD_DATA, dy, dyOffset, w, wOffset, null, 0, dx, dxOffset,
        workspace, parallelism);
  }

  /** {@code dx = dL/dx} on arrays. */
  public void backwardData(float[] dy, int dyOffset, float[] w, int wOffset, float[] dx, int dxOffset) {
    backwardData(dy, dyOffset, w, wOffset, dx, dxOffset, Parallelism.getDefault());
  }

  /** {@code dx = dL/dx} on arrays on up to {@code parallelism} threads. */
  public void backwardData(float[] dy, int dyOffset, float[] w, int wOffset, float[] dx, int dxOffset,
      Parallelism parallelism) {
    backwardData(Checks.array(dy, "dy"), dyOffset, Checks.array(w, "w"), wOffset, Checks.array(dx, "dx"), dxOffset, null,
        parallelism);
  }

  // ---- backward: weights ----

  /** {@code dw = dL/dw}, summed over the batch, from the input and {@code dy}; overwrites dw. */
  public void backwardWeights(MemorySegment x, long xOffset, MemorySegment dy, long dyOffset,
      MemorySegment dw, long dwOffset) {
    backwardWeights(x, xOffset, dy, dyOffset, dw, dwOffset, null, Parallelism.getDefault());
  }

  /** {@code dw = dL/dw}; {@code workspace} as for {@link #forward}. */
  public void backwardWeights(MemorySegment x, long xOffset, MemorySegment dy, long dyOffset,
      MemorySegment dw, long dwOffset, MemorySegment workspace, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    input("x", x, xOffset, false);
    output("dy", dy, dyOffset, false);
    weight("dw", dw, dwOffset, true);
    checkWorkspace(workspace, parallelism);
    ConvTask.run(this, ConvTask.BACKWARD_WEIGHTS, x, xOffset, dy, dyOffset, null, 0, dw, dwOffset,
        workspace, parallelism);
  }

  /** {@code dw = dL/dw} on arrays. */
  public void backwardWeights(float[] x, int xOffset, float[] dy, int dyOffset, float[] dw, int dwOffset) {
    backwardWeights(x, xOffset, dy, dyOffset, dw, dwOffset, Parallelism.getDefault());
  }

  /** {@code dw = dL/dw} on arrays on up to {@code parallelism} threads. */
  public void backwardWeights(float[] x, int xOffset, float[] dy, int dyOffset, float[] dw, int dwOffset,
      Parallelism parallelism) {
    backwardWeights(Checks.array(x, "x"), xOffset, Checks.array(dy, "dy"), dyOffset, Checks.array(dw, "dw"), dwOffset, null,
        parallelism);
  }

  // ---- backward: bias ----

  /** {@code db[k] = sum of dy[n, k, :, :] over n}; overwrites db. */
  public void backwardBias(MemorySegment dy, long dyOffset, MemorySegment db, long dbOffset) {
    backwardBias(dy, dyOffset, db, dbOffset, Parallelism.getDefault());
  }

  /** {@code db = dL/db} on up to {@code parallelism} threads (split over filters). */
  public void backwardBias(MemorySegment dy, long dyOffset, MemorySegment db, long dbOffset, Parallelism parallelism) {
    Checks.notNull(parallelism, "parallelism");
    output("dy", dy, dyOffset, false);
    bias("db", db, dbOffset, true);
    ChannelSums.run(batch, filters, outHeight * outWidth, dy, dyOffset, db, dbOffset, parallelism);
  }

  /** {@code db = dL/db} on arrays. */
  public void backwardBias(float[] dy, int dyOffset, float[] db, int dbOffset) {
    backwardBias(Checks.array(dy, "dy"), dyOffset, Checks.array(db, "db"), dbOffset, Parallelism.getDefault());
  }

  // ---- validation ----

  private void input(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,H,W]", batch, channels, height, width, offset, Checks.floats(s));
  }

  private void weight(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[K,C/groups,R,S]", filters, channels / groups, kernelH, kernelW, offset, Checks.floats(s));
  }

  private void bias(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[K]", filters, -1, -1, -1, offset, Checks.floats(s));
  }

  private void output(String name, MemorySegment s, long offset, boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,K,Hout,Wout]", batch, filters, outHeight, outWidth, offset, Checks.floats(s));
  }

  private void checkWorkspace(MemorySegment workspace, Parallelism parallelism) {
    if (workspace == null) {
      return;
    }
    Checks.writable(workspace, "workspace");
    long need = workspaceFloats(parallelism.threads());
    if (Checks.floats(workspace) < need) {
      throw new IllegalArgumentException("workspace holds " + Checks.floats(workspace) + " floats but "
          + this + " on " + parallelism.threads() + " threads needs workspaceFloats(" + parallelism.threads()
          + ") = " + need);
    }
  }


  @Override
  public String toString() {
    return "Conv2d[N=" + batch + ", C=" + channels + ", H=" + height + ", W=" + width + ", K=" + filters
        + ", kernel=" + kernelH + "x" + kernelW + ", stride=" + strideH + "x" + strideW + ", padding=" + padH
        + "x" + padW + ", dilation=" + dilationH + "x" + dilationW + ", groups=" + groups + ", out="
        + outHeight + "x" + outWidth + "]";
  }
}
