/**
 * Lanes kernels: vectorized float32 kernels on {@link java.lang.foreign.MemorySegment}s.
 *
 * <p>Needs {@code --add-modules jdk.incubator.vector} on every JVM that loads it (the Vector API
 * is still incubating in JDK 25). Depends on nothing but the JDK.
 */
module dev.lanes.kernels {
  requires jdk.incubator.vector;

  exports dev.lanes.kernels;
  exports dev.lanes.kernels.reference;
}
