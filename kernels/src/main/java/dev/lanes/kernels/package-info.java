/**
 * The public kernels: {@link dev.lanes.kernels.Gemm} and the types its calls take
 * ({@link dev.lanes.kernels.Transpose}, {@link dev.lanes.kernels.Parallelism}).
 *
 * <p>Every kernel works on raw float32 {@link java.lang.foreign.MemorySegment}s or {@code float[]}
 * arrays addressed by element offsets and leading dimensions, row-major unless a method says
 * otherwise. There are no tensor objects here. Arguments are validated completely before any
 * element is read or written; a bad call throws and leaves every output untouched.
 *
 * <p>Public entry points sit in one class per kernel family; their internals (micro-kernels,
 * packing, blocking, threading) are package-private classes beside them. This package depends
 * only on {@code java.base} and {@code jdk.incubator.vector}.
 */
package dev.lanes.kernels;
