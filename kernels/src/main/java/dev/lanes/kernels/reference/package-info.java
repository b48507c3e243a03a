/**
 * Plain double-precision references for the kernels, written for clarity rather than speed.
 * Tests and the verification module compare the vectorized kernels against them. They use the
 * same argument conventions (offsets, leading dimensions, row-major) as the kernels they mirror,
 * on {@code float[]} inputs and a {@code double[]} result. Depends on nothing but {@code java.base}.
 */
package dev.lanes.kernels.reference;
