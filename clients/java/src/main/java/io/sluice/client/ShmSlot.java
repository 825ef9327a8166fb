package io.sluice.client;

/**
 * Where one {@code shm} batch lies: the region file, the message's absolute offset and length in
 * it, and its sequence number in the stream (release it with {@link ShmLayout#release}).
 */
public record ShmSlot(String region, long offset, long length, long seq) {
  public ShmSlot {
    if (region == null || region.isEmpty()) {
      throw new ProtocolException("shm.region", "shm descriptor lacks the region path");
    }
    if (offset < ShmLayout.HEADER_BYTES || length <= 0 || seq < 0) {
      throw new ProtocolException(
          "shm",
          "shm descriptor offset="
              + offset
              + " length="
              + length
              + " seq="
              + seq
              + " is out of range");
    }
  }
}
