package dev.lanes.verification;

import dev.lanes.kernels.Conv2d;
import java.util.SplittableRandom;
import org.quicktheories.core.Gen;
import org.quicktheories.generators.SourceDSL;

/**
 * A random convolution and the seed of its data. Shapes cover what the properties must see:
 * batch 1, odd sizes, strides larger than the kernel, padding of 1 and 2, dilation 2, groups and
 * depthwise (groups = C) convolutions, and groups of 4 to 8 channels (for the data gradient's
 * forward-convolution path). The sizes stay small so the double references stay cheap.
 */
public record ConvCase(Conv2d conv, boolean withBias, long seed) {
  /** Random convolutions; {@code minPositions} > 1 asks for outputs of at least that many pixels. */
  public static Gen<ConvCase> cases(int maxSide, int minPositions) {
    return SourceDSL.longs().all().map(seed -> random(seed, maxSide, minPositions));
  }

  static ConvCase random(long seed, int maxSide, int minPositions) {
    SplittableRandom r = new SplittableRandom(seed);
    int batch = 1 + r.nextInt(3);
    int kind = r.nextInt(4);
    int groups;
    int channels;
    int filters;
    if (kind == 0) {
      groups = 1;
      channels = 1 + r.nextInt(4);
      filters = 1 + r.nextInt(5);
    } else if (kind == 1) {
      groups = 2 + r.nextInt(2);
      channels = groups * (1 + r.nextInt(2));
      filters = groups * (1 + r.nextInt(2));
    } else if (kind == 3) {
      // Enough channels for the data gradient to run as a forward convolution (Conv2d's rule).
      groups = 1 + r.nextInt(2);
      channels = groups * (4 + r.nextInt(5));
      filters = groups * (1 + r.nextInt(3));
    } else {
      channels = 1 + r.nextInt(4);
      groups = channels;
      filters = channels * (1 + r.nextInt(2));
    }
    int kh = 1 + r.nextInt(4);
    int kw = 1 + r.nextInt(4);
    int sh = 1 + r.nextInt(r.nextBoolean() ? 2 : 5);
    int sw = 1 + r.nextInt(r.nextBoolean() ? 2 : 5);
    int ph = r.nextInt(3);
    int pw = r.nextInt(3);
    int dh = 1 + r.nextInt(2);
    int dw = 1 + r.nextInt(2);
    if (kind == 3) {
      // Stride 1 and padding within the kernel's reach: the data gradient's forward path (unless
      // 1x1), which a uniform draw reached in about 1.5% of cases.
      sh = 1;
      sw = 1;
      ph = Math.min(ph, dh * (kh - 1));
      pw = Math.min(pw, dw * (kw - 1));
    }
    if (r.nextInt(3) == 0) {
      // Stride 1 and an output as wide as the input ("same" padding along W, as ResNet's 3x3 has):
      // im2col and col2im then take their shifted-row path, which a uniform draw rarely reached.
      sh = 1;
      sw = 1;
      kw = 1 + 2 * r.nextInt(2);
      pw = dw * (kw - 1) / 2;
    }
    int minH = Math.max(1, dh * (kh - 1) + 1 - 2 * ph);
    int minW = Math.max(1, dw * (kw - 1) + 1 - 2 * pw);
    int h = minH + r.nextInt(Math.max(1, maxSide - minH + 1));
    int w = minW + r.nextInt(Math.max(1, maxSide - minW + 1));
    // Grow the input until the output has the pixels asked for (used by the thread properties).
    Conv2d conv;
    while (true) {
      conv = Conv2d.builder(batch, channels, h, w).filters(filters).kernel(kh, kw).stride(sh, sw)
          .padding(ph, pw).dilation(dh, dw).groups(groups).build();
      if (conv.outHeight() * conv.outWidth() >= minPositions) {
        break;
      }
      h += 3;
      w += 3;
    }
    return new ConvCase(conv, r.nextBoolean(), seed);
  }

  /** Uniform floats in [-1, 1), from a stream of this case's seed. */
  public float[] data(int stream, long length) {
    SplittableRandom r = new SplittableRandom(seed * 31 + stream);
    float[] v = new float[Math.toIntExact(length)];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (r.nextDouble() * 2 - 1);
    }
    return v;
  }

  public float[] x() {
    return data(1, conv.inputFloats());
  }

  public float[] w() {
    return data(2, conv.weightFloats());
  }

  public float[] bias() {
    return withBias ? data(3, conv.filters()) : null;
  }

  public float[] dy() {
    return data(4, conv.outputFloats());
  }

  @Override
  public String toString() {
    return conv + (withBias ? " with bias" : "") + ", data seed " + seed;
  }
}
