/**
 * Differentiable operators (forward, backward and shape inference side by side) built on the
 * kernels. May depend on {@code dev.lanes.kernels} only. Empty until the ops issue lands.
 */
package dev.lanes.ops;
