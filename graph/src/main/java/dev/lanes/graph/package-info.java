/**
 * The static compute graph: built once, compiled with reverse-mode autodiff and a liveness-planned
 * arena, then run without allocating. May depend on {@code dev.lanes.ops} and
 * {@code dev.lanes.kernels}. Empty until the graph issue lands.
 */
package dev.lanes.graph;
