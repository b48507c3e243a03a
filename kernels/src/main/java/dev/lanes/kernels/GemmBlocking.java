package dev.lanes.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Cache blocking for the GEMM, derived from this machine's L1d and L2 sizes.
 *
 * <p>The loop order (see {@link GemmTask}) is Goto's: a KC x NC block of B is packed once per
 * stage, an MC x KC block of A is packed into L2, and then each KC x NR micro-panel of B stays in
 * L1 while the kernel runs every MR-row micro-panel of the A block past it.
 * <ul>
 *   <li><b>KC</b>: the depth of a stage, by kernel.
 *       <ul>
 *         <li>The 2 x 4 kernel (256- and 128-bit vectors): the B micro-panel gets half of L1d,
 *             KC*NR*4 <= L1d/2; the other half holds the A micro-panels passing through and the
 *             lines of C. (32 KiB L1d, NR = 32: KC = 128.)
 *         <li>The 12 x 2 kernel (512-bit vectors): its A micro-panel gets three quarters of L1d,
 *             MR*KC*4 <= 3/4 L1d (48 KiB: KC = 768). This kernel loads 176 bytes of panels per 24
 *             FMAs, little enough to stream both panels from L2, so L1 does not have to hold the B
 *             micro-panel; what a shallow stage costs is the merge of every 12 x 32 tile into C
 *             once per stage, with C's 12 rows a full row pitch apart (8 KiB at n = 2048) and
 *             mostly out of cache. Measured on a Zen 5 machine (48 KiB L1d, 1 MiB L2), one thread,
 *             Lanes/OpenBLAS alternating call by call: KC = 192 (the L1/2 rule) with MC = 672
 *             gave 0.88 at 1024^3 and 0.82 at 2048^3; KC = 768 with MC = 96 gave 0.95-0.98 and
 *             0.96-0.98 in four runs. KC = 640 and 896 measured within 0.03 of 768; 1024 (a row
 *             pitch of 4 KiB, so the 12 rows of an A panel share one L1 set) ran 0.66-0.98 from
 *             run to run, and 2048 0.72 at 2048^3.
 *       </ul>
 *   <li><b>MC</b>: the A block gets half of L2, MC*KC*4 <= L2/2, in whole groups of
 *       {@link #TRANSPOSED_A_GROUP} micro-panels. (512 KiB L2, KC = 128: MC = 512. 1 MiB L2,
 *       KC = 768: MC = 96, one group; at KC = 512, MC = 192 measured 0.90 at 2048^3 against 0.93
 *       for 96.)
 *   <li><b>NC</b>: the packed B block, KC*NC*4 <= L2/2 rounded down to a multiple of NR, but at
 *       least {@link #MIN_PANELS} panels; it may live in L3, as in BLIS, since each of its
 *       micro-panels is read from there once per A block and then served from L1.
 * </ul>
 * Measured on the Zen 3 machine, this order with the 2 x 4 kernel against the order before it
 * (one 4-row A micro-panel in L1, the whole B block streamed past it from L3, KC = 512) with the
 * 4 x 2 kernel, alternating call by call in one JVM, median ratio of speeds: one thread 1.20 at
 * 64^3, 1.25 at 128^3, 0.95 and 1.10 (two runs) at 256^3, 1.07 at 512^3, 1.01 and 1.06 at 1024^3,
 * 1.09 at 2048^3; two threads, best of three per round, 1.06-1.17 at 256^3, 1.02-1.11 at 512^3,
 * 0.99-1.24 at 1024^3, 0.98-1.33 at 2048^3. With the 4 x 2 kernel, Goto's order alone had gained
 * only in the machine's fast stretches (2048^3: 1.08-1.28x) and lost in its slow ones
 * (0.67-1.02x); a larger KC (192 to 512) with the 2 x 4 kernel made no difference (1.01-1.02).
 *
 * <p>KC is fixed for a machine, so the order of the k-sum, and with it every result bit, is the
 * same for any thread count. {@code lanes.gemm.kc}, {@code lanes.gemm.mc} and {@code lanes.gemm.nc}
 * override the derived values for tuning experiments.
 */
final class GemmBlocking {
  static final long L1D_BYTES = cacheBytes(1, 48 * 1024);
  /**
   * The fallback is 1 MiB, the per-core L2 of most current x86 server cores (Zen 4 and 5, Skylake-SP
   * to Ice Lake-SP); a too-large guess costs more than a too-small one (see the class comment).
   */
  static final long L2_BYTES = cacheBytes(2, 1024 * 1024);

  /**
   * Fewest NR-column panels in a B block, so that each packed A block serves at least this many B
   * micro-panels before the next B block needs it packed again. With a small L2 the half-of-L2
   * rule alone gives few (16 on a Zen 3 core: 512 KiB L2, KC = 128, NR = 32); 32 panels make the
   * block 1024 columns wide there (512 KiB, in L3, which BLIS's own Zen blockings also accept).
   */
  static final int MIN_PANELS = 32;

  static final int KC = Integer.getInteger("lanes.gemm.kc", clamp(roundDown(derivedKc(), 16), 64, 1024));
  static final int NC = Integer.getInteger("lanes.gemm.nc",
      clamp(Math.max(roundDown((int) (L2_BYTES / 2 / (KC * 4L)), GemmMicroKernel.NR), MIN_PANELS * GemmMicroKernel.NR),
          GemmMicroKernel.NR, 8192));

  /** Rows of A in one packed block: a whole number of transposed-A groups (see the class comment). */
  static final int MC = mcRows();

  /**
   * MR-row panels packed together when A is transposed: with MR = 12, 8 x 12 rows make each k step
   * of the group one run of 96 floats (6 cache lines) read front to back (MR = 2: 16 floats, one
   * line). Smaller groups share cache lines between groups; larger ones leave two threads fewer
   * groups to balance.
   */
  static final int TRANSPOSED_A_GROUP = 8;

  private GemmBlocking() {}

  /**
   * The depth of a stage before rounding; see the class comment for the two rules and what
   * measured them.
   */
  private static int derivedKc() {
    if (GemmMicroKernel.MR >= 12) {
      return (int) (L1D_BYTES * 3 / 4 / (GemmMicroKernel.MR * 4L));
    }
    return (int) (L1D_BYTES / 2 / (GemmMicroKernel.NR * 4L));
  }

  private static int mcRows() {
    int group = GemmMicroKernel.MR * TRANSPOSED_A_GROUP;
    int derived = clamp(roundDown((int) (L2_BYTES / 2 / (KC * 4L)), group), group, 64 * group);
    return roundDown(Integer.getInteger("lanes.gemm.mc", derived), group);
  }

  private static int roundDown(int x, int multiple) {
    return Math.max(multiple, x / multiple * multiple);
  }

  private static int clamp(int x, int lo, int hi) {
    return Math.max(lo, Math.min(hi, x));
  }

  /**
   * Reads the data (or unified) cache of the given level from Linux sysfs. Some virtual machines
   * have no cache entries there (a Zen 5 VM measured for this class had none); on AMD processors
   * /proc/cpuinfo's "cache size" is then the per-core L2 (on Intel's it is the L3, so it is not
   * read there). Elsewhere, the fallback.
   */
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
    return level == 2 ? amdL2FromCpuinfo(fallback) : fallback;
  }

  private static long amdL2FromCpuinfo(long fallback) {
    try (var lines = Files.lines(Path.of("/proc/cpuinfo"))) {
      boolean amd = false;
      for (String line : (Iterable<String>) lines::iterator) {
        int colon = line.indexOf(':');
        if (colon < 0) {
          continue;
        }
        String key = line.substring(0, colon).trim();
        String value = line.substring(colon + 1).trim();
        if (key.equals("vendor_id")) {
          amd = value.equals("AuthenticAMD");
        } else if (key.equals("cache size")) {
          // "1024 KB"
          return amd ? parseSize(value.replace(" ", "").replace("KB", "K"), fallback) : fallback;
        }
      }
    } catch (IOException | RuntimeException e) {
      return fallback;
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
