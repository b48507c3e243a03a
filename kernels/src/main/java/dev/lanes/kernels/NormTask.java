package dev.lanes.kernels;

import java.lang.foreign.MemorySegment;

/**
 * The operands that {@link BatchNorm}'s and {@link LayerNorm}'s split passes share: x, gamma,
 * beta, the output (y forward, dx backward), the saved mean and rstd, dy, and eps. Offsets are in
 * floats. A subclass instance is reused per calling thread, so {@link #release} drops the segments
 * after each call and a finished call keeps nothing alive.
 */
abstract class NormTask implements ParallelTask {
  float eps;
  MemorySegment x;
  long xOffset;
  MemorySegment gamma;
  long gammaOffset;
  MemorySegment beta;
  long betaOffset;
  /** y forward, dx backward. */
  MemorySegment out;
  long outOffset;
  MemorySegment mean;
  long meanOffset;
  MemorySegment rstd;
  long rstdOffset;
  MemorySegment dy;
  long dyOffset;

  /** The operands every pass has. */
  void operands(MemorySegment x, long xOffset, MemorySegment gamma, long gammaOffset, MemorySegment out,
      long outOffset, MemorySegment mean, long meanOffset, MemorySegment rstd, long rstdOffset) {
    this.x = x;
    this.xOffset = xOffset;
    this.gamma = gamma;
    this.gammaOffset = gammaOffset;
    this.out = out;
    this.outOffset = outOffset;
    this.mean = mean;
    this.meanOffset = meanOffset;
    this.rstd = rstd;
    this.rstdOffset = rstdOffset;
  }

  /** The forward passes' eps and beta. */
  void affine(float eps, MemorySegment beta, long betaOffset) {
    this.eps = eps;
    this.beta = beta;
    this.betaOffset = betaOffset;
  }

  /** The backward pass's dy. */
  void gradient(MemorySegment dy, long dyOffset) {
    this.dy = dy;
    this.dyOffset = dyOffset;
  }

  /** Whether every operand set may be used by the pool's workers (null ones count as shareable). */
  boolean operandsShareable() {
    return Checks.shareable(x) && Checks.shareable(gamma) && Checks.shareable(beta) && Checks.shareable(out)
        && Checks.shareable(mean) && Checks.shareable(rstd) && Checks.shareable(dy);
  }

  /** Drops every segment reference. */
  void release() {
    x = null;
    gamma = null;
    beta = null;
    out = null;
    mean = null;
    rstd = null;
    dy = null;
  }
}
