package dev.lanes.kernels;

/** A computation split into {@code parts} independent pieces, run as {@code run(0..parts-1, parts)}. */
interface ParallelTask {
  void run(int part, int parts);
}
