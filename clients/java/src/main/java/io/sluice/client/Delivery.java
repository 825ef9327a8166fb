package io.sluice.client;

import java.util.Locale;

/** How a batch reaches the trainer; the wire name is what descriptors and app_metadata carry. */
public enum Delivery {
  /** Arrow IPC body in the Flight stream itself: works for any client on any host. */
  CPU("cpu"),
  /** Batch body in a shared-memory ring on the daemon's host; the stream carries descriptors. */
  SHM("shm"),
  /** Batch in device memory; the stream carries a CUDA IPC handle and offsets. */
  CUDA("cuda"),
  /** The fastest path the client can use; app_metadata names the one taken. */
  AUTO("auto");

  private final String wireName;

  Delivery(String wireName) {
    this.wireName = wireName;
  }

  public String wireName() {
    return wireName;
  }

  /** Parses a wire name, rejecting anything else with the field and value named. */
  public static Delivery parse(String value) {
    for (Delivery d : values()) {
      if (d.wireName.equals(value.toLowerCase(Locale.ROOT))) {
        return d;
      }
    }
    throw new ProtocolException(
        "delivery", "delivery=" + value + " must be one of cpu, shm, cuda, auto");
  }
}
