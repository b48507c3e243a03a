package dev.lanes.bench;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas_nolapack;

/**
 * Which of its kernel sets the OpenBLAS baseline runs on this machine, for the tables' headers.
 *
 * <p>Why it is printed: OpenBLAS picks its kernels by CPU model, and a model it does not know gets
 * an older set. On a Zen 5 machine the OpenBLAS 0.3.30 of these benchmarks chose its Haswell (AVX2)
 * kernels, half the speed of its SkylakeX (AVX-512) ones there; the {@code lanes} script asks for
 * the AVX-512 set on such machines ({@code OPENBLAS_CORETYPE}). The bytedeco bindings do not expose
 * {@code openblas_get_corename}, so it is called through the FFM linker, in the library JavaCPP has
 * loaded.
 */
final class OpenBlasCore {
  private OpenBlasCore() {}

  /** OpenBLAS's name for the kernels it runs, e.g. "SkylakeX" or "Haswell"; "unknown" if it cannot tell. */
  static String name() {
    try {
      Loader.load(openblas_nolapack.class);
      MemorySegment function = SymbolLookup.loaderLookup().find("openblas_get_corename").orElse(null);
      if (function == null) {
        return "unknown";
      }
      MethodHandle corename = Linker.nativeLinker().downcallHandle(function, FunctionDescriptor.of(ValueLayout.ADDRESS));
      MemorySegment text = (MemorySegment) corename.invokeExact();
      return text.reinterpret(64).getString(0).trim();
    } catch (Throwable e) {
      return "unknown";
    }
  }

  /**
   * One line for a table's header: the kernels, how they were chosen, and, when the {@code lanes}
   * script replaced the environment's {@code OPENBLAS_CORETYPE}, what that had been.
   */
  static String describe() {
    String chosen = System.getenv("OPENBLAS_CORETYPE");
    String before = System.getenv("LANES_OPENBLAS_CORETYPE_BEFORE");
    String how = chosen == null ? "OpenBLAS's own choice" : "OPENBLAS_CORETYPE=" + chosen;
    if (before != null && !before.isEmpty() && !before.equals(chosen)) {
      how += "; the environment had " + before + ", see the lanes script";
    }
    return "OpenBLAS kernels: " + name() + " (" + how + ")";
  }
}
