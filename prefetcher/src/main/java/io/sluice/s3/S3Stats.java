package io.sluice.s3;

import java.util.concurrent.atomic.LongAdder;

/** What a {@link S3Store} did since start: requests, retries, hedges, timeouts, bytes. */
public final class S3Stats {
  final LongAdder requests = new LongAdder();
  final LongAdder retries = new LongAdder();
  final LongAdder hedges = new LongAdder();
  final LongAdder hedgesWon = new LongAdder();
  final LongAdder timeouts = new LongAdder();
  final LongAdder failures = new LongAdder();
  final LongAdder bytes = new LongAdder();

  /** Every request sent, first tries, retries and hedges alike. */
  public long requests() {
    return requests.sum();
  }

  public long retries() {
    return retries.sum();
  }

  public long hedges() {
    return hedges.sum();
  }

  /** Hedges that finished before the request they shadowed. */
  public long hedgesWon() {
    return hedgesWon.sum();
  }

  public long timeouts() {
    return timeouts.sum();
  }

  /** Calls that failed for good, after their last try. */
  public long failures() {
    return failures.sum();
  }

  /** Bytes of ranged reads completed. */
  public long bytes() {
    return bytes.sum();
  }

  @Override
  public String toString() {
    return "requests="
        + requests()
        + " retries="
        + retries()
        + " hedges="
        + hedges()
        + " hedges_won="
        + hedgesWon()
        + " timeouts="
        + timeouts()
        + " failures="
        + failures()
        + " bytes="
        + bytes();
  }
}
