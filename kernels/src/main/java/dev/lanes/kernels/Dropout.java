package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Inverted dropout: in training, each element is kept with probability {@code 1 - p} and scaled
 * by {@code 1/(1 - p)}, or set to 0; in inference it is the identity (use the input as is).
 *
 * <p>The mask is counter-based, so it needs no storage and no state: element i is kept when
 * {@link #keeps(long, long, float)}, a hash of (seed, i), clears the threshold. The same seed
 * gives the same mask for any thread count and any split of the work, and {@link #backward}
 * regenerates it to route the gradient through the same elements. Element i means the i-th float
 * from the given offset. Use a fresh seed per step (and per layer).
 *
 * <p>The hash is MurmurHash3's 32-bit finalizer (Appleby's public-domain mixer) applied to
 * {@code i * 0x9E3779B9 + key(seed, i >>> 32)}: a bijection of the low 32 bits of i for each
 * key, so no two elements of a 2^32 block share a draw. Its top 24 bits are the uniform draw,
 * compared with {@code p 2^24}, so p is resolved to 2^-24.
 */
public final class Dropout {
  private static final VectorSpecies<Float> SPECIES = FloatLanes.SPECIES;
  private static final VectorSpecies<Integer> INTS = SPECIES.withLanes(int.class);
  private static final int LANES = SPECIES.length();
  private static final ByteOrder ORDER = ByteOrder.nativeOrder();
  private static final int GOLDEN = 0x9E3779B9;
  private static final IntVector LANE_INDEX = IntVector.zero(INTS).addIndex(1);
  /** Below this many floats a call is not worth a second thread. */
  private static final long MIN_PER_THREAD = 1 << 16;

  private Dropout() {}

  /** {@code y = keep ? x / (1 - p) : 0}; y may be x. p in [0, 1]; p = 1 drops everything. */
  public static void forward(long n, float p, long seed, MemorySegment x, long xOffset, MemorySegment y,
      long yOffset, Parallelism parallelism) {
    apply(n, p, seed, x, xOffset, "x", y, yOffset, "y", parallelism);
  }

  /** {@code dx = keep ? dy / (1 - p) : 0} with the forward's mask (same n, p and seed); dx may be dy. */
  public static void backward(long n, float p, long seed, MemorySegment dy, long dyOffset, MemorySegment dx,
      long dxOffset, Parallelism parallelism) {
    apply(n, p, seed, dy, dyOffset, "dy", dx, dxOffset, "dx", parallelism);
  }

  /** Whether element i is kept: the scalar definition the vector code follows lane for lane. */
  public static boolean keeps(long seed, long i, float p) {
    int h = mix((int) i * GOLDEN + key(seed, i >>> 32));
    return (h >>> 8) >= threshold(p);
  }

  private static int threshold(float p) {
    return (int) Math.min(1L << 24, Math.round((double) p * (1 << 24)));
  }

  /** Per 2^32 block of indices, a key from the seed and the block number. */
  private static int key(long seed, long block) {
    long z = seed + block * 0x9E3779B97F4A7C15L;
    return mix((int) z ^ mix((int) (z >>> 32)));
  }

  /** MurmurHash3 fmix32. */
  private static int mix(int h) {
    h ^= h >>> 16;
    h *= 0x85EBCA6B;
    h ^= h >>> 13;
    h *= 0xC2B2AE35;
    return h ^ (h >>> 16);
  }

  private static void apply(long n, float p, long seed, MemorySegment in, long inOffset, String inName,
      MemorySegment out, long outOffset, String outName, Parallelism parallelism) {
    Checks.nonNegative(n, "n");
    if (!(p >= 0 && p <= 1)) {
      throw new IllegalArgumentException("p = " + p + " must be in [0, 1]");
    }
    Elementwise.span(n, in, inOffset, inName, false);
    Elementwise.span(n, out, outOffset, outName, true);
    Checks.notNull(parallelism, "parallelism");
    int parts = (int) Math.max(1, Math.min(parallelism.threads(), n / MIN_PER_THREAD));
    if (!(Checks.shareable(in) && Checks.shareable(out))) {
      parts = 1;
    }
    if (parts == 1) {
      range(0, n, p, seed, in, 4 * inOffset, out, 4 * outOffset);
      return;
    }
    int partsFinal = parts;
    parallelism.invoke((part, all) -> {
      // Whole vectors per part, so that every part but the last starts on a vector boundary.
      long per = (n / LANES + partsFinal - 1) / partsFinal * LANES;
      long from = Math.min(n, part * per);
      long to = part == all - 1 ? n : Math.min(n, from + per);
      range(from, to, p, seed, in, 4 * inOffset, out, 4 * outOffset);
    }, parts);
  }

  /** Elements {@code [from, to)}; the mask of element i depends on i only. */
  private static void range(long from, long to, float p, long seed, MemorySegment in, long inAt, MemorySegment out,
      long outAt) {
    if (p == 1) {
      for (long i = from; i < to; i += 1 << 30) {
        SegmentLoops.fill(out, outAt + 4 * i, (int) Math.min(1 << 30, to - i), 0f);
      }
      return;
    }
    float scale = 1 / (1 - p);
    int threshold = threshold(p);
    long i = from;
    // Vectors must not straddle a 2^32 block (the key changes there), so loop block by block.
    while (i < to) {
      long blockEnd = Math.min(to, ((i >>> 32) + 1) << 32);
      block(i, blockEnd, key(seed, i >>> 32), threshold, scale, in, inAt, out, outAt);
      i = blockEnd;
    }
  }

  private static void block(long from, long to, int key, int threshold, float scale, MemorySegment in, long inAt,
      MemorySegment out, long outAt) {
    long n = to - from;
    long whole = n - n % LANES;
    VectorMask<Float> tail = SPECIES.indexInRange(whole, n);
    for (long k = 0; k < n; k += LANES) {
      boolean full = k < whole;
      long i = from + k;
      IntVector h = LANE_INDEX.add((int) i).mul(GOLDEN).add(key);
      h = h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 16)).mul(0x85EBCA6B);
      h = h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 13)).mul(0xC2B2AE35);
      h = h.lanewise(VectorOperators.XOR, h.lanewise(VectorOperators.LSHR, 16));
      VectorMask<Float> keep = h.lanewise(VectorOperators.LSHR, 8).compare(VectorOperators.GE, threshold).cast(SPECIES);
      long at = 4 * i;
      FloatVector v = full ? FloatVector.fromMemorySegment(SPECIES, in, inAt + at, ORDER)
          : FloatVector.fromMemorySegment(SPECIES, in, inAt + at, ORDER, tail);
      FloatVector r = FloatVector.zero(SPECIES).blend(v.mul(scale), keep);
      if (full) {
        r.intoMemorySegment(out, outAt + at, ORDER);
      } else {
        r.intoMemorySegment(out, outAt + at, ORDER, tail);
      }
    }
  }
}
