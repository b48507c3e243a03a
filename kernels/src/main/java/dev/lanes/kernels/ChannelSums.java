package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code out[c] = sum over n and p of x[n, c, p]} for an {@code [N, C, P]} tensor: the bias
 * gradient of a convolution (and of any per-channel bias). Threads split the channels, so every
 * sum runs in the same order, image by image, for any thread count and any JIT tier.
 */
final class ChannelSums implements ParallelTask {
  private static final ThreadLocal<ChannelSums> PER_THREAD = ThreadLocal.withInitial(ChannelSums::new);
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  /** Below this many floats a call is not worth a second thread. */
  private static final long MIN_FLOATS_PER_THREAD = 1 << 16;

  private int batch;
  private int channels;
  private int positions;
  private MemorySegment x;
  private long xOffset;
  private MemorySegment out;
  private long outOffset;

  static void run(int batch, int channels, int positions, MemorySegment x, long xOffset, MemorySegment out,
      long outOffset, Parallelism parallelism) {
    ChannelSums task = PER_THREAD.get();
    task.batch = batch;
    task.channels = channels;
    task.positions = positions;
    task.x = x;
    task.xOffset = xOffset;
    task.out = out;
    task.outOffset = outOffset;
    long floats = (long) batch * channels * positions;
    int parts = (int) Math.min(Math.min(parallelism.threads(), channels), Math.max(1, floats / MIN_FLOATS_PER_THREAD));
    if (!(Checks.shareable(x) && Checks.shareable(out))) {
      parts = 1;
    }
    try {
      parallelism.invoke(task, parts);
    } finally {
      task.x = null;
      task.out = null;
    }
  }

  @Override
  public void run(int part, int parts) {
    int c0 = (int) ((long) channels * part / parts);
    int c1 = (int) ((long) channels * (part + 1) / parts);
    for (int c = c0; c < c1; c++) {
      float total = 0f;
      for (int n = 0; n < batch; n++) {
        total += sum(x, 4L * (xOffset + ((long) n * channels + c) * positions), positions);
      }
      out.set(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, 4L * (outOffset + c), total);
    }
  }

  /** Sum of n floats from byte {@code at}: LANES partial sums, then across them. */
  static float sum(MemorySegment s, long at, int n) {
    FloatVector acc = FloatVector.zero(SPECIES);
    int i = 0;
    for (int whole = n - n % LANES; i < whole; i += LANES) {
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, s, at + 4L * i, ORDER));
    }
    if (i < n) {
      acc = acc.add(FloatVector.fromMemorySegment(SPECIES, s, at + 4L * i, ORDER, SPECIES.indexInRange(i, n)));
    }
    // FloatLanes.sum's fixed lane tree, not reduceLanes: see there (seen here first, as a 1-ulp
    // bias-gradient difference between 1 and 2 threads in a clean-clone CI run). Written out, not
    // called: this method is also inlined where it runs once per kernel call (layer norm's first
    // row), and there C2 judged the nested call "too big" for its frequency, so acc crossed a real
    // call boxed: 448 B per 4096x1024 layer norm.
    if (LANES > 8) {
      acc = acc.add(acc.rearrange(FloatLanes.PARTNER_8));
    }
    if (LANES > 4) {
      acc = acc.add(acc.rearrange(FloatLanes.PARTNER_4));
    }
    if (LANES > 2) {
      acc = acc.add(acc.rearrange(FloatLanes.PARTNER_2));
    }
    return acc.add(acc.rearrange(FloatLanes.PARTNER_1)).lane(0);
  }
}
