package io.sluice.planner;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Statistical checks that {@code global} looks like a uniformly random permutation. */
class GlobalShuffleStatisticsTest {
  private static final int N = 1000;
  private static final int BUCKETS = 10;
  private static final int SEEDS = 2000;

  /** chi-square(9 dof) exceeds this with probability 1e-7. */
  private static final double PER_SAMPLE_LIMIT = 50.17;

  @Test
  void eachSampleLandsInEveryPositionBucketUniformlyOverSeeds() {
    int[][] counts = bucketCounts(new ShuffleMode.Global(), 0);
    double total = 0;
    for (int id = 0; id < N; id++) {
      double chi = chiSquare(counts[id]);
      assertTrue(chi < PER_SAMPLE_LIMIT, "sampleId=" + id + " chi2=" + chi);
      total += chi;
    }
    // The sum over 1000 samples is about chi-square with 9000 dof: mean 9000, sd 134.
    assertTrue(Math.abs(total - 9000) < 800, "sum chi2=" + total);
  }

  @Test
  void theSameStatisticRejectsAnOrderThatIsNotShuffled() {
    int[][] counts = bucketCounts(new ShuffleMode.None(), 0);
    assertTrue(chiSquare(counts[0]) > PER_SAMPLE_LIMIT);
  }

  @Test
  void epochsAreUniformToo() {
    int[][] counts = bucketCounts(new ShuffleMode.Global(), 17);
    double total = 0;
    for (int id = 0; id < N; id++) {
      total += chiSquare(counts[id]);
    }
    assertTrue(Math.abs(total - 9000) < 800, "sum chi2=" + total);
  }

  /** counts[id][bucket]: how many seeds put sample id in that tenth of the positions. */
  private static int[][] bucketCounts(ShuffleMode mode, long epoch) {
    int[][] counts = new int[N][BUCKETS];
    DatasetLayout layout = DatasetLayout.ofCount(N);
    for (long seed = 0; seed < SEEDS; seed++) {
      GlobalSequence sequence = GlobalSequence.of(layout, seed * 1_000_003L, epoch, mode);
      for (int p = 0; p < N; p++) {
        counts[(int) sequence.sampleAt(p)][p * BUCKETS / N]++;
      }
    }
    return counts;
  }

  private static double chiSquare(int[] observed) {
    double expected = (double) SEEDS / BUCKETS;
    double chi = 0;
    for (int o : observed) {
      chi += (o - expected) * (o - expected) / expected;
    }
    return chi;
  }

  @Test
  void consecutiveIdsAreUncorrelated() {
    // Near position 0 of large domains, with even and odd bit widths.
    for (long n : new long[] {1L << 40, (1L << 41) + 12345, 10_000_000_000L, 1L << 62}) {
      GlobalSequence sequence =
          GlobalSequence.of(DatasetLayout.ofCount(n), 99, 0, new ShuffleMode.Global());
      int count = 200_000;
      double[] x = new double[count + 1];
      double[] position = new double[count + 1];
      for (int p = 0; p <= count; p++) {
        x[p] = sequence.sampleAt(p) / (double) n;
        position[p] = p;
      }
      double serial = pearson(x, 0, x, 1, count);
      double withPosition = pearson(x, 0, position, 0, count);
      // sd of r under independence is 1/sqrt(200000) = 0.0022; allow 4.5 sd.
      assertTrue(Math.abs(serial) < 0.01, "N=" + n + " serial r=" + serial);
      assertTrue(Math.abs(withPosition) < 0.01, "N=" + n + " position r=" + withPosition);
    }
    GlobalSequence unshuffled =
        GlobalSequence.of(DatasetLayout.ofCount(1000), 1, 0, new ShuffleMode.None());
    double[] ids = new double[1000];
    for (int p = 0; p < 1000; p++) {
      ids[p] = unshuffled.sampleAt(p);
    }
    assertTrue(pearson(ids, 0, ids, 1, 999) > 0.99, "the check can fail");
  }

  @Test
  void consecutiveIdsFallInIndependentBuckets() {
    // Joint distribution of (bucket of id at p, bucket of id at p+1): 16 x 16 cells, both the top
    // and the bottom bits of the ids, where a weak Feistel network would show structure.
    for (long n : new long[] {1L << 36, (1L << 33) + 99, 3_000_001}) {
      GlobalSequence sequence =
          GlobalSequence.of(DatasetLayout.ofCount(n), 5, 1, new ShuffleMode.Global());
      int pairs = 256 * 400;
      long[][] top = new long[16][16];
      long[][] low = new long[16][16];
      for (int i = 0; i < pairs; i++) {
        long p = i;
        long a = sequence.sampleAt(p);
        long b = sequence.sampleAt(p + 1);
        top[(int) ((a * 16) / n)][(int) ((b * 16) / n)]++;
        low[(int) (a & 15)][(int) (b & 15)]++;
      }
      // Independence chi-square with 15 * 15 = 225 dof: mean 225, sd 21.2; the limit is 6.4 sd.
      assertTrue(chiSquare(top, pairs) < 360, "N=" + n + " top-bits chi2=" + chiSquare(top, pairs));
      assertTrue(chiSquare(low, pairs) < 360, "N=" + n + " low-bits chi2=" + chiSquare(low, pairs));
    }
  }

  private static double chiSquare(long[][] cells, int total) {
    double chi = 0;
    double[] rows = new double[cells.length];
    double[] cols = new double[cells.length];
    for (int i = 0; i < cells.length; i++) {
      for (int j = 0; j < cells.length; j++) {
        rows[i] += cells[i][j];
        cols[j] += cells[i][j];
      }
    }
    for (int i = 0; i < cells.length; i++) {
      for (int j = 0; j < cells.length; j++) {
        double expected = rows[i] * cols[j] / total;
        chi += (cells[i][j] - expected) * (cells[i][j] - expected) / expected;
      }
    }
    return chi;
  }

  @Test
  void consecutiveIdsAreUncorrelatedInSmallDomainsAcrossSeeds() {
    int n = 1000;
    int seeds = 200;
    double[] a = new double[(n - 1) * seeds];
    double[] b = new double[(n - 1) * seeds];
    int at = 0;
    for (long seed = 0; seed < seeds; seed++) {
      GlobalSequence sequence =
          GlobalSequence.of(DatasetLayout.ofCount(n), seed, 0, new ShuffleMode.Global());
      for (int p = 0; p + 1 < n; p++) {
        a[at] = sequence.sampleAt(p);
        b[at] = sequence.sampleAt(p + 1);
        at++;
      }
    }
    double r = pearson(a, 0, b, 0, at);
    assertTrue(Math.abs(r) < 0.01, "serial r=" + r);
  }

  private static double pearson(double[] x, int xFrom, double[] y, int yFrom, int count) {
    double mx = 0;
    double my = 0;
    for (int i = 0; i < count; i++) {
      mx += x[xFrom + i];
      my += y[yFrom + i];
    }
    mx /= count;
    my /= count;
    double sxy = 0;
    double sxx = 0;
    double syy = 0;
    for (int i = 0; i < count; i++) {
      double dx = x[xFrom + i] - mx;
      double dy = y[yFrom + i] - my;
      sxy += dx * dy;
      sxx += dx * dx;
      syy += dy * dy;
    }
    return sxy / Math.sqrt(sxx * syy);
  }
}
