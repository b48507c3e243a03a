package dev.lanes.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Cache blocking for the GEMM, derived from this machine's L1d and L2 sizes.
 *
 * <p>The loop order (see {@link GemmTask}) keeps one packed MR x KC micro-panel of A in L1 while
 * the kernel streams KC x NR micro-panels of B past it from an L2-resident KC x NC block of B:
 * <ul>
 *   <li><b>KC</b>: the A micro-panel gets a quarter of L1d, MR*KC*4 <= L1d/4. The rest of L1 is for
 *       the B micro-panel passing through and the C tile. (48 KiB L1d, MR = 12: KC = 256; 32 KiB L1d,
 *       MR = 4: KC = 512.)
 *   <li><b>NC</b>: the packed B block gets half of L2, KC*NC*4 <= L2/2, rounded down to a multiple
 *       of NR. The other half absorbs the A panels, C and the hardware prefetcher's run-ahead.
 *       (2 MiB L2: NC = 1024.) But at least {@link #MIN_PANELS} panels, so each A micro-panel
 *       serves that many tiles: a 512 KiB L2 at KC = 512 would give 128, and gets 512, the block
 *       then streaming from L3.
 *   <li><b>MC</b>: there is none. A is packed one MR-row micro-panel at a time, just before it is
 *       used, so it is written straight into L1 and never needs an L2 block of its own.
 * </ul>
 * Goto's order, the other way round (an MC x KC block of A packed into L2, each B micro-panel kept
 * in L1 while the A micro-panels stream past it), was tried on the Zen 3 machine. The kernel alone,
 * fed that way, ran at 84-86 GFLOPS against 70-79 fed as here. But the whole GEMM, old and new
 * alternating in one JVM, gained only in the machine's fast stretches (2048^3, one thread:
 * 1.08-1.28x) and lost in its slow ones (2048^3: 0.81-1.02x on one thread, 0.67-0.92x on two, with
 * KC = 512 or 256), as if the L1 and L2 it relies on were shared with another tenant; so this order
 * stays.
 * KC is fixed for a machine, so the order of the k-sum, and with it every result bit, is the same
 * for any thread count. {@code lanes.gemm.kc} and {@code lanes.gemm.nc} override the derived values
 * for tuning experiments.
 */
final class GemmBlocking {
  static final long L1D_BYTES = cacheBytes(1, 48 * 1024);
  static final long L2_BYTES = cacheBytes(2, 2 * 1024 * 1024);

  /**
   * Fewest NR-column panels in a B block, so that each packed A micro-panel serves at least this
   * many tiles. With a small L2 the half-of-L2 rule alone gives few: 8 on a Zen 3 core (512 KiB L2,
   * KC = 512, NC = 128), where packing each A micro-panel from the unpacked, strided rows of A
   * (cold in cache) was amortized over only 8 tiles. Measured there, alternating both settings in
   * one JVM (one thread): NC = 512 ran 1.13-1.16x as fast as 128 at 512^3 and 2048^3, 1.05-1.11x
   * at 1024^3, and as fast as NC = 1024; two threads at 1024^3 1.03-1.10x. The B block then lives
   * in L3 rather than L2 (1 MiB here), which BLIS's own Zen blockings do too. On a 2 MiB L2 with
   * 512-bit vectors the half-of-L2 rule already gives 32 panels.
   */
  static final int MIN_PANELS = 32;

  static final int KC = Integer.getInteger("lanes.gemm.kc",
      clamp(roundDown((int) (L1D_BYTES / 4 / (GemmMicroKernel.MR * 4L)), 16), 64, 1024));
  static final int NC = Integer.getInteger("lanes.gemm.nc",
      clamp(Math.max(roundDown((int) (L2_BYTES / 2 / (KC * 4L)), GemmMicroKernel.NR), MIN_PANELS * GemmMicroKernel.NR),
          GemmMicroKernel.NR, 8192));

  /**
   * MR-row panels packed together when A is transposed: with MR = 12, 8 x 12 rows make each k step
   * of the group one run of 96 floats (6 cache lines) read front to back, and the group's
   * 8 x 12 x KC floats (96 KB at KC = 256) stay in L2 (MR = 4: 32 floats, 64 KB at KC = 512). Smaller groups share cache lines between groups; larger ones
   * leave two threads fewer groups to balance (an m = 1024 product has 11).
   */
  static final int TRANSPOSED_A_GROUP = 8;

  private GemmBlocking() {}

  private static int roundDown(int x, int multiple) {
    return Math.max(multiple, x / multiple * multiple);
  }

  private static int clamp(int x, int lo, int hi) {
    return Math.max(lo, Math.min(hi, x));
  }

  /** Reads the data (or unified) cache of the given level from Linux sysfs; the fallback elsewhere. */
  private static long cacheBytes(int level, long fallback) {
    Path dir = Path.of("/sys/devices/system/cpu/cpu0/cache");
    for (int index = 0; index < 8; index++) {
      Path entry = dir.resolve("index" + index);
      try {
        if (!Files.isDirectory(entry)) {
          break;
        }
        int entryLevel = Integer.parseInt(Files.readString(entry.resolve("level")).trim());
        String type = Files.readString(entry.resolve("type")).trim();
        if (entryLevel == level && !type.equals("Instruction")) {
          return parseSize(Files.readString(entry.resolve("size")).trim(), fallback);
        }
      } catch (IOException | RuntimeException e) {
        return fallback;
      }
    }
    return fallback;
  }

  private static long parseSize(String text, long fallback) {
    String s = text.toUpperCase(Locale.ROOT);
    long unit = 1;
    if (s.endsWith("K")) {
      unit = 1024;
    } else if (s.endsWith("M")) {
      unit = 1024 * 1024;
    }
    String digits = unit == 1 ? s : s.substring(0, s.length() - 1);
    try {
      return Long.parseLong(digits) * unit;
    } catch (NumberFormatException e) {
      return fallback;
    }
  }
}
