/**
 * Plain double-precision references for the kernels, written for clarity rather than speed.
 * Tests and the verification module compare the vectorized kernels against them. They use the
 * same layouts as the kernels they mirror (row-major; the same {@code Conv2d} or {@code Pool2d}
 * description for convolution and pooling, the same {@code Activation} for activations), on
 * {@code double[]} arrays. Depends on {@code java.base} and on those public descriptions only.
 */
package dev.lanes.kernels.reference;
