package dev.lanes.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * Batch normalization over N and the spatial positions of {@code x [N, C, S]} (S = H*W for
 * {@code [N, C, H, W]}, 1 for {@code [N, C]}), per channel, PyTorch's {@code batch_norm}.
 *
 * <ul>
 *   <li>{@link #forwardTraining}: the batch mean and biased variance of each channel (M = N*S
 *       values), {@code y = (x - mean) rstd gamma + beta}, {@code rstd = 1/sqrt(var + eps)}. It
 *       saves mean and rstd ({@code [C]}) for the backward and updates the running statistics
 *       by momentum: {@code running = (1 - momentum) running + momentum stat}, with the unbiased
 *       variance {@code var M / (M - 1)} for the running variance, as PyTorch does.
 *   <li>{@link #forwardInference}: the same map with the running mean and variance.
 *   <li>{@link #backward}: {@code dbeta = sum dy}, {@code dgamma = sum dy xhat} (both written),
 *       {@code dx = gamma rstd (dy - dbeta/M - xhat dgamma/M)}.
 * </ul>
 * Statistics are two-pass (mean, then squared deviations); each plane is summed in float vector
 * lanes and the planes of a channel in double. Every call checks its buffers first. Threads split
 * the channels, each computed as it would be alone, so results do not depend on the thread count.
 */
public final class BatchNorm {
  private static final ThreadLocal<double[]> SUMS = ThreadLocal.withInitial(() -> new double[2]);

  private BatchNorm() {}

  /** Training forward on {@link Parallelism#getDefault()}. y may be x. */
  public static void forwardTraining(int batch, int channels, int spatial, float eps, float momentum,
      MemorySegment x, long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset,
      MemorySegment y, long yOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset,
      MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar, long runningVarOffset) {
    forwardTraining(batch, channels, spatial, eps, momentum, x, xOffset, gamma, gammaOffset, beta, betaOffset, y,
        yOffset, mean, meanOffset, rstd, rstdOffset, runningMean, runningMeanOffset, runningVar, runningVarOffset,
        Parallelism.getDefault());
  }

  /**
   * Training forward. y may be x. Threads take runs of whole channels, each computed as it would be
   * alone, so the result does not depend on the thread count (as for the other two passes).
   */
  public static void forwardTraining(int batch, int channels, int spatial, float eps, float momentum,
      MemorySegment x, long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset,
      MemorySegment y, long yOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset,
      MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar, long runningVarOffset,
      Parallelism parallelism) {
    checkShape(batch, channels, spatial, eps);
    long count = (long) batch * spatial;
    if (count < 2) {
      throw new IllegalArgumentException("training batch norm needs more than 1 value per channel, got N*S = "
          + batch + "*" + spatial + " = " + count);
    }
    if (!(momentum >= 0 && momentum <= 1)) {
      throw new IllegalArgumentException("momentum = " + momentum + " must be in [0, 1]");
    }
    tensor("x", x, xOffset, batch, channels, spatial, false);
    tensor("y", y, yOffset, batch, channels, spatial, true);
    perChannel(channels, gamma, gammaOffset, "gamma", false, beta, betaOffset, "beta", false);
    perChannel(channels, mean, meanOffset, "mean", true, rstd, rstdOffset, "rstd", true);
    perChannel(channels, runningMean, runningMeanOffset, "runningMean", true, runningVar, runningVarOffset,
        "runningVar", true);
    Checks.notNull(parallelism, "parallelism");
    Channels task = Channels.start(Channels.TRAINING, batch, channels, spatial, x, xOffset, gamma, gammaOffset, y,
        yOffset, mean, meanOffset, rstd, rstdOffset);
    task.momentum = momentum;
    task.affine(eps, beta, betaOffset);
    task.perChannel(runningMean, runningMeanOffset, runningVar, runningVarOffset).run(parallelism);
  }

  private static void trainingChannels(int from, int to, int batch, int channels, int spatial, float eps,
      float momentum, MemorySegment x, long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta,
      long betaOffset, MemorySegment y, long yOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
      long rstdOffset, MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar,
      long runningVarOffset) {
    long count = (long) batch * spatial;
    for (int c = from; c < to; c++) {
      double total = 0;
      for (long n = 0; n < batch; n++) {
        total += ChannelSums.sum(x, plane(xOffset, n, c, channels, spatial), spatial);
      }
      float mu = (float) (total / count);
      double squares = 0;
      for (long n = 0; n < batch; n++) {
        squares += NormLoops.squaredDeviations(spatial, x, plane(xOffset, n, c, channels, spatial), mu);
      }
      double variance = squares / count;
      float inverse = (float) (1 / Math.sqrt(variance + eps));
      set(mean, meanOffset, c, mu);
      set(rstd, rstdOffset, c, inverse);
      set(runningMean, runningMeanOffset, c, (1 - momentum) * get(runningMean, runningMeanOffset, c) + momentum * mu);
      float unbiased = (float) (variance * count / (count - 1));
      set(runningVar, runningVarOffset, c, (1 - momentum) * get(runningVar, runningVarOffset, c) + momentum * unbiased);
      normalizeChannel(batch, channels, spatial, c, x, xOffset, mu, inverse, get(gamma, gammaOffset, c),
          get(beta, betaOffset, c), y, yOffset);
    }
  }

  /** Inference forward with the running statistics, on {@link Parallelism#getDefault()}. y may be x. */
  public static void forwardInference(int batch, int channels, int spatial, float eps, MemorySegment x,
      long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset,
      MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar, long runningVarOffset,
      MemorySegment y, long yOffset) {
    forwardInference(batch, channels, spatial, eps, x, xOffset, gamma, gammaOffset, beta, betaOffset, runningMean,
        runningMeanOffset, runningVar, runningVarOffset, y, yOffset, Parallelism.getDefault());
  }

  /** Inference forward with the running statistics; threads take runs of whole channels. y may be x. */
  public static void forwardInference(int batch, int channels, int spatial, float eps, MemorySegment x,
      long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset,
      MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar, long runningVarOffset,
      MemorySegment y, long yOffset, Parallelism parallelism) {
    checkShape(batch, channels, spatial, eps);
    tensor("x", x, xOffset, batch, channels, spatial, false);
    tensor("y", y, yOffset, batch, channels, spatial, true);
    perChannel(channels, gamma, gammaOffset, "gamma", false, beta, betaOffset, "beta", false);
    perChannel(channels, runningMean, runningMeanOffset, "runningMean", false, runningVar, runningVarOffset,
        "runningVar", false);
    Checks.notNull(parallelism, "parallelism");
    Channels task = Channels.start(Channels.INFERENCE, batch, channels, spatial, x, xOffset, gamma, gammaOffset, y,
        yOffset, null, 0, null, 0);
    task.affine(eps, beta, betaOffset);
    task.perChannel(runningMean, runningMeanOffset, runningVar, runningVarOffset).run(parallelism);
  }

  private static void inferenceChannels(int from, int to, int batch, int channels, int spatial, float eps,
      MemorySegment x, long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment beta, long betaOffset,
      MemorySegment runningMean, long runningMeanOffset, MemorySegment runningVar, long runningVarOffset,
      MemorySegment y, long yOffset) {
    for (int c = from; c < to; c++) {
      float mu = get(runningMean, runningMeanOffset, c);
      float inverse = (float) (1 / Math.sqrt((double) get(runningVar, runningVarOffset, c) + eps));
      normalizeChannel(batch, channels, spatial, c, x, xOffset, mu, inverse, get(gamma, gammaOffset, c),
          get(beta, betaOffset, c), y, yOffset);
    }
  }

  /** Backward of the training forward on {@link Parallelism#getDefault()}. dx may be dy. */
  public static void backward(int batch, int channels, int spatial, MemorySegment x, long xOffset,
      MemorySegment gamma, long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
      long rstdOffset, MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma,
      long dgammaOffset, MemorySegment dbeta, long dbetaOffset) {
    backward(batch, channels, spatial, x, xOffset, gamma, gammaOffset, mean, meanOffset, rstd, rstdOffset, dy,
        dyOffset, dx, dxOffset, dgamma, dgammaOffset, dbeta, dbetaOffset, Parallelism.getDefault());
  }

  /**
   * Backward of the training forward, from its input x and saved mean and rstd; threads take runs of
   * whole channels. dx may be dy.
   */
  public static void backward(int batch, int channels, int spatial, MemorySegment x, long xOffset,
      MemorySegment gamma, long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
      long rstdOffset, MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma,
      long dgammaOffset, MemorySegment dbeta, long dbetaOffset, Parallelism parallelism) {
    checkShape(batch, channels, spatial, 0);
    tensor("x", x, xOffset, batch, channels, spatial, false);
    tensor("dy", dy, dyOffset, batch, channels, spatial, false);
    tensor("dx", dx, dxOffset, batch, channels, spatial, true);
    perChannel(channels, gamma, gammaOffset, "gamma", false, mean, meanOffset, "mean", false);
    perChannel(channels, rstd, rstdOffset, "rstd", false, dgamma, dgammaOffset, "dgamma", true);
    LayerNorm.vector("dbeta", dbeta, dbetaOffset, channels, true);
    Checks.notNull(parallelism, "parallelism");
    Channels task = Channels.start(Channels.BACKWARD, batch, channels, spatial, x, xOffset, gamma, gammaOffset, dx,
        dxOffset, mean, meanOffset, rstd, rstdOffset);
    task.gradient(dy, dyOffset);
    task.perChannel(dgamma, dgammaOffset, dbeta, dbetaOffset).run(parallelism);
  }

  private static void backwardChannels(int from, int to, int batch, int channels, int spatial, MemorySegment x,
      long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment mean, long meanOffset, MemorySegment rstd,
      long rstdOffset, MemorySegment dy, long dyOffset, MemorySegment dx, long dxOffset, MemorySegment dgamma,
      long dgammaOffset, MemorySegment dbeta, long dbetaOffset) {
    long count = (long) batch * spatial;
    double[] sums = SUMS.get();
    for (int c = from; c < to; c++) {
      float mu = get(mean, meanOffset, c);
      float inverse = get(rstd, rstdOffset, c);
      sums[0] = 0;
      sums[1] = 0;
      for (long n = 0; n < batch; n++) {
        NormLoops.planeGradientSums(spatial, x, plane(xOffset, n, c, channels, spatial), mu, inverse, dy,
            plane(dyOffset, n, c, channels, spatial), sums);
      }
      set(dbeta, dbetaOffset, c, (float) sums[0]);
      set(dgamma, dgammaOffset, c, (float) sums[1]);
      float scale = get(gamma, gammaOffset, c) * inverse;
      float meanD = (float) (sums[0] / count);
      float meanDX = (float) (sums[1] / count);
      for (long n = 0; n < batch; n++) {
        NormLoops.planeInputGradient(spatial, x, plane(xOffset, n, c, channels, spatial), mu, inverse, dy,
            plane(dyOffset, n, c, channels, spatial), scale, meanD, meanDX, dx, plane(dxOffset, n, c, channels,
                spatial));
      }
    }
  }

  /**
   * One of the three passes cut into runs of whole channels between threads. One instance per
   * calling thread, reused (fields set for a call, segments cleared after it), so a call allocates
   * nothing.
   */
  private static final class Channels extends NormTask {
    static final int TRAINING = 0;
    static final int INFERENCE = 1;
    static final int BACKWARD = 2;
    private static final ThreadLocal<Channels> PER_THREAD = ThreadLocal.withInitial(Channels::new);
    /** Below this many floats per thread a call stays on the calling thread. */
    private static final long MIN_FLOATS_PER_THREAD = 1 << 15;

    private int op;
    private int batch;
    private int channels;
    private int spatial;
    private float momentum;
    /** The running mean forward, dgamma backward. */
    private MemorySegment running;
    private long runningOffset;
    /** The running variance forward, dbeta backward. */
    private MemorySegment running2;
    private long running2Offset;

    static Channels start(int op, int batch, int channels, int spatial, MemorySegment x, long xOffset,
        MemorySegment gamma, long gammaOffset, MemorySegment out, long outOffset, MemorySegment mean, long meanOffset,
        MemorySegment rstd, long rstdOffset) {
      Channels task = PER_THREAD.get();
      task.op = op;
      task.batch = batch;
      task.channels = channels;
      task.spatial = spatial;
      task.operands(x, xOffset, gamma, gammaOffset, out, outOffset, mean, meanOffset, rstd, rstdOffset);
      return task;
    }

    /** The two per-channel buffers: running mean and variance forward, dgamma and dbeta backward. */
    Channels perChannel(MemorySegment first, long firstOffset, MemorySegment second, long secondOffset) {
      running = first;
      runningOffset = firstOffset;
      running2 = second;
      running2Offset = secondOffset;
      return this;
    }

    void run(Parallelism parallelism) {
      boolean shareable = operandsShareable() && Checks.shareable(running) && Checks.shareable(running2);
      try {
        parallelism.invoke(this,
            parallelism.parts((long) batch * channels * spatial, MIN_FLOATS_PER_THREAD, channels, shareable));
      } finally {
        release();
        running = null;
        running2 = null;
      }
    }

    @Override
    public void run(int part, int parts) {
      int from = (int) ((long) channels * part / parts);
      int to = (int) ((long) channels * (part + 1) / parts);
      switch (op) {
        case TRAINING -> trainingChannels(from, to, batch, channels, spatial, eps, momentum, x, xOffset, gamma,
            gammaOffset, beta, betaOffset, out, outOffset, mean, meanOffset, rstd, rstdOffset, running, runningOffset,
            running2, running2Offset);
        case INFERENCE -> inferenceChannels(from, to, batch, channels, spatial, eps, x, xOffset, gamma, gammaOffset,
            beta, betaOffset, running, runningOffset, running2, running2Offset, out, outOffset);
        default -> backwardChannels(from, to, batch, channels, spatial, x, xOffset, gamma, gammaOffset, mean,
            meanOffset, rstd, rstdOffset, dy, dyOffset, out, outOffset, running, runningOffset, running2,
            running2Offset);
      }
    }
  }

  private static void normalizeChannel(int batch, int channels, int spatial, int c, MemorySegment x, long xOffset,
      float mean, float rstd, float gamma, float beta, MemorySegment y, long yOffset) {
    for (long n = 0; n < batch; n++) {
      NormLoops.normalize(spatial, x, plane(xOffset, n, c, channels, spatial), mean, rstd, gamma, beta, y,
          plane(yOffset, n, c, channels, spatial));
    }
  }

  private static long plane(long offset, long n, int c, int channels, int spatial) {
    return 4 * (offset + (n * channels + c) * spatial);
  }

  private static float get(MemorySegment s, long offset, int c) {
    return s.get(JAVA_FLOAT_UNALIGNED, 4 * (offset + c));
  }

  private static void set(MemorySegment s, long offset, int c, float value) {
    s.set(JAVA_FLOAT_UNALIGNED, 4 * (offset + c), value);
  }

  private static void checkShape(int batch, int channels, int spatial, float eps) {
    Checks.nonNegative(batch, "batch");
    Checks.positive(channels, "channels");
    Checks.positive(spatial, "spatial");
    LayerNorm.checkShape(0, 1, eps);
  }

  private static void tensor(String name, MemorySegment s, long offset, int batch, int channels, int spatial,
      boolean written) {
    Checks.accessible(s, name, written);
    Checks.tensor(name, "[N,C,S]", batch, channels, spatial, -1, offset, Checks.floats(s));
  }

  private static void perChannel(int channels, MemorySegment a, long aOffset, String aName, boolean aWritten,
      MemorySegment b, long bOffset, String bName, boolean bWritten) {
    LayerNorm.vector(aName, a, aOffset, channels, aWritten);
    LayerNorm.vector(bName, b, bOffset, channels, bWritten);
  }
}
