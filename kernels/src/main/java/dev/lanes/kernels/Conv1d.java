package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * 1-D convolution over {@code [N, C, L]} sequences with PyTorch's {@code conv1d} semantics (the
 * n-gram filters of a TextCNN, for example): weight {@code [K, C/groups, S]}, bias {@code [K]},
 * output {@code [N, K, Lout]} with {@code Lout = floor((L + 2p - d(S-1) - 1)/s) + 1}.
 *
 * <p>It is a {@link Conv2d} over images one row high with a 1 x S kernel: the layouts are the same
 * bytes, so every call delegates, with the same workspace, threading, accuracy and errors.
 */
public final class Conv1d {
  private final Conv2d conv;

  private Conv1d(Conv2d conv) {
    this.conv = conv;
  }

  /** Starts a description of a convolution over a {@code [batch, channels, length]} input. */
  public static Builder builder(int batch, int channels, int length) {
    return new Builder(batch, channels, length);
  }

  /** Collects the attributes of a {@link Conv1d}; {@link #build()} validates them all at once. */
  public static final class Builder {
    private final Conv2d.Builder inner;

    private Builder(int batch, int channels, int length) {
      inner = Conv2d.builder(batch, channels, 1, length);
    }

    public Builder filters(int filters) {
      inner.filters(filters);
      return this;
    }

    /** The kernel width S (required). */
    public Builder kernel(int width) {
      inner.kernel(1, width);
      return this;
    }

    public Builder stride(int stride) {
      inner.stride(1, stride);
      return this;
    }

    public Builder padding(int padding) {
      inner.padding(0, padding);
      return this;
    }

    public Builder dilation(int dilation) {
      inner.dilation(1, dilation);
      return this;
    }

    public Builder groups(int groups) {
      inner.groups(groups);
      return this;
    }

    public Conv1d build() {
      return new Conv1d(inner.build());
    }
  }

  /** The same convolution as a {@link Conv2d} over {@code [N, C, 1, L]}. */
  public Conv2d asConv2d() {
    return conv;
  }

  public int outLength() {
    return conv.outWidth();
  }

  public int filters() {
    return conv.filters();
  }

  public long inputFloats() {
    return conv.inputFloats();
  }

  public long weightFloats() {
    return conv.weightFloats();
  }

  public long outputFloats() {
    return conv.outputFloats();
  }

  public long flops() {
    return conv.flops();
  }

  public long workspaceFloats(int threads) {
    return conv.workspaceFloats(threads);
  }

  public void forward(MemorySegment x, long xOffset, MemorySegment w, long wOffset, MemorySegment bias,
      long biasOffset, MemorySegment y, long yOffset, MemorySegment workspace, Parallelism parallelism) {
    conv.forward(x, xOffset, w, wOffset, bias, biasOffset, y, yOffset, workspace, parallelism);
  }

  public void forward(float[] x, int xOffset, float[] w, int wOffset, float[] bias, int biasOffset,
      float[] y, int yOffset) {
    conv.forward(x, xOffset, w, wOffset, bias, biasOffset, y, yOffset);
  }

  public void backwardData(MemorySegment dy, long dyOffset, MemorySegment w, long wOffset, MemorySegment dx,
      long dxOffset, MemorySegment workspace, Parallelism parallelism) {
    conv.backwardData(dy, dyOffset, w, wOffset, dx, dxOffset, workspace, parallelism);
  }

  public void backwardData(float[] dy, int dyOffset, float[] w, int wOffset, float[] dx, int dxOffset) {
    conv.backwardData(dy, dyOffset, w, wOffset, dx, dxOffset);
  }

  public void backwardWeights(MemorySegment x, long xOffset, MemorySegment dy, long dyOffset, MemorySegment dw,
      long dwOffset, MemorySegment workspace, Parallelism parallelism) {
    conv.backwardWeights(x, xOffset, dy, dyOffset, dw, dwOffset, workspace, parallelism);
  }

  public void backwardWeights(float[] x, int xOffset, float[] dy, int dyOffset, float[] dw, int dwOffset) {
    conv.backwardWeights(x, xOffset, dy, dyOffset, dw, dwOffset);
  }

  public void backwardBias(MemorySegment dy, long dyOffset, MemorySegment db, long dbOffset,
      Parallelism parallelism) {
    conv.backwardBias(dy, dyOffset, db, dbOffset, parallelism);
  }

  public void backwardBias(float[] dy, int dyOffset, float[] db, int dbOffset) {
    conv.backwardBias(dy, dyOffset, db, dbOffset);
  }

  @Override
  public String toString() {
    return "Conv1d over " + conv;
  }
}
