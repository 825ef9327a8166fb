package io.sluice.client;

/**
 * Constants both sides of the Sluice Flight protocol agree on. The daemon depends on this class,
 * never the reverse: a change here is a versioned protocol change.
 */
public final class Protocol {
  /** Version of the descriptor and app_metadata JSON. */
  public static final int VERSION = 1;

  /** Column every batch carries: the global sample id (uint64). */
  public static final String SAMPLE_ID_COLUMN = "sample_id";

  /** Default daemon port. */
  public static final int DEFAULT_PORT = 8815;

  /**
   * Flight action returning the daemon's read-ahead counters as one JSON result: per job (dataset
   * and plan family) the prefetcher's reads, the cache's hits and bytes, and each attached stream's
   * batches, hits, misses, stalls and lead.
   */
  public static final String STATS_ACTION = "stats";

  /**
   * Flight action answering where the daemon's shm probe file is, as JSON {@code {"available":
   * true, "path": ..., "layout_version": 1}} (or {@code {"available": false, "cause": ...}}). A
   * client that can read the file shares the daemon's host and its shared memory; it sends the
   * file's content as the descriptor's {@code shm_token} to get {@code shm} (or {@code auto})
   * delivery.
   */
  public static final String SHM_PROBE_ACTION = "shm_probe";

  private Protocol() {}
}
