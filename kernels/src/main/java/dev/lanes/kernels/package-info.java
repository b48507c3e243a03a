/**
 * The public kernels: {@link dev.lanes.kernels.Gemm}, {@link dev.lanes.kernels.Conv2d} and
 * {@link dev.lanes.kernels.Conv1d}, {@link dev.lanes.kernels.Pool2d} and
 * {@link dev.lanes.kernels.GlobalPool}, {@link dev.lanes.kernels.Softmax} (with the fused
 * cross-entropy), {@link dev.lanes.kernels.Activation}, {@link dev.lanes.kernels.Loss},
 * {@link dev.lanes.kernels.LayerNorm}, {@link dev.lanes.kernels.BatchNorm},
 * {@link dev.lanes.kernels.Dropout}, {@link dev.lanes.kernels.Embedding},
 * {@link dev.lanes.kernels.Elementwise}, {@link dev.lanes.kernels.Optimizer}, the recurrent layers
 * ({@link dev.lanes.kernels.Lstm}, {@link dev.lanes.kernels.Gru}, {@link dev.lanes.kernels.BidirectionalLstm},
 * {@link dev.lanes.kernels.BidirectionalGru}), and the types their
 * calls take ({@link dev.lanes.kernels.Transpose}, {@link dev.lanes.kernels.Parallelism}). Convolution and
 * pooling describe their shape once in an immutable, validated object built with a builder, as a
 * oneDNN primitive descriptor does; the other kernels are static methods.
 *
 * <p>Every kernel works on raw float32 {@link java.lang.foreign.MemorySegment}s or {@code float[]}
 * arrays addressed by element offsets and leading dimensions, row-major unless a method says
 * otherwise. There are no tensor objects here. Arguments are validated completely before any
 * element is read or written; a bad call throws and leaves every output untouched.
 *
 * <p>Public entry points sit in one class per kernel family; their internals (micro-kernels,
 * packing, blocking, threading) are package-private classes beside them. This package depends
 * only on {@code java.base} and {@code jdk.incubator.vector}.
 *
 * <p>A rule every kernel here follows: methods that hold vectors are small. C1 gives up on large
 * vector methods ("out of virtual registers"), and a method C1 cannot compile at tier 3 can stay in
 * tier-2 code for good, where the Vector API is not intrinsified and every vector is a heap object.
 * So a kernel is split into passes or stages that hand each other scalars or arrays, never vectors.
 *
 * <p>A second rule: results do not depend on the thread count or on which JIT tier ran a piece.
 * Work is split only where no sum is split (or where partial sums have a fixed order), lane sums
 * use {@code FloatLanes.sum} instead of {@code reduceLanes(ADD)}, and transcendental functions come
 * from {@code VectorMath} (FMAs and IEEE operations) instead of the Vector API's SVML-backed ones,
 * whose interpreted fallback rounds differently.
 */
package dev.lanes.kernels;
