package io.sluice.peer;

import java.lang.foreign.MemorySegment;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;

/**
 * The messages every peer transport carries, little-endian:
 *
 * <pre>
 * fetch:   magic u32 | kind u8 = 1 | requestId u64 | datasetLength u16 | dataset UTF-8
 *          | count u32 | count x (sampleId u64, lengthBytes u32)
 * answer:  magic u32 | kind u8 = 2 | requestId u64 | count u32 | count x length i32 (-1: not held)
 *          | transport part (tcp: the held samples' bytes, in request order, back to back;
 *                            ucx: address u64 | slot u32 | rkey of the staged bytes, laid out the
 *                            same; disni: address u64 | rkey u32 | slot i32)
 * error:   magic u32 | kind u8 = 3 | requestId u64 | messageLength u16 | message UTF-8
 * release: magic u32 | kind u8 = 4 | requestId u64 | (ucx, disni: the slot run to free)
 * </pre>
 *
 * A fetch carries the lengths the asker expects, so a peer holding a sample of another length (an
 * object replaced between reads) answers "not held" instead of sending bytes that would be dropped.
 */
public final class PeerWire {
  public static final int MAGIC = 0x31504c53; // "SLP1"
  public static final byte FETCH = 1;
  public static final byte ANSWER = 2;
  public static final byte ERROR = 3;
  public static final byte RELEASE = 4;

  /** Samples one fetch may ask for. */
  public static final int MAX_IDS = 1 << 16;

  /** Longest dataset name, in UTF-8 bytes. */
  public static final int MAX_DATASET_BYTES = 1024;

  /** magic, kind, requestId. */
  public static final int PREAMBLE_BYTES = 4 + 1 + 8;

  private PeerWire() {}

  /** A decoded fetch. */
  public record Fetch(long requestId, String dataset, long[] ids, int[] lengths) {}

  /**
   * The answer of a fetch that needs no message: failed when {@code ids} and {@code dsts} differ in
   * length, empty when there is nothing to fetch; null otherwise.
   */
  public static CompletableFuture<boolean[]> trivialAnswer(long[] ids, MemorySegment[] dsts) {
    if (ids.length != dsts.length) {
      return CompletableFuture.failedFuture(
          new IllegalArgumentException(
              "ids=" + ids.length + " and dsts=" + dsts.length + " must match"));
    }
    return ids.length == 0 ? CompletableFuture.completedFuture(new boolean[0]) : null;
  }

  public static ByteBuffer allocate(int bytes) {
    return ByteBuffer.allocateDirect(bytes).order(ByteOrder.LITTLE_ENDIAN);
  }

  public static int fetchBytes(String dataset, int count) {
    return PREAMBLE_BYTES + 2 + utf8(dataset).length + 4 + count * 12;
  }

  /** Writes a fetch at {@code out}'s position. */
  public static void putFetch(
      ByteBuffer out, long requestId, String dataset, long[] ids, int[] lengths) {
    byte[] name = utf8(dataset);
    if (name.length > MAX_DATASET_BYTES) {
      throw new IllegalArgumentException(
          "dataset name of " + name.length + " bytes must be <= " + MAX_DATASET_BYTES);
    }
    if (ids.length > MAX_IDS || ids.length != lengths.length) {
      throw new IllegalArgumentException(
          "ids=" + ids.length + ", lengths=" + lengths.length + " must match and be <= " + MAX_IDS);
    }
    out.order(ByteOrder.LITTLE_ENDIAN);
    out.putInt(MAGIC).put(FETCH).putLong(requestId).putShort((short) name.length).put(name);
    out.putInt(ids.length);
    for (int i = 0; i < ids.length; i++) {
      out.putLong(ids[i]).putInt(lengths[i]);
    }
  }

  /** Reads the magic and kind at {@code in}'s position, checking the magic. */
  public static byte kind(ByteBuffer in) throws PeerException {
    in.order(ByteOrder.LITTLE_ENDIAN);
    if (in.remaining() < PREAMBLE_BYTES) {
      throw new PeerException(
          "message of " + in.remaining() + " bytes is shorter than its preamble");
    }
    int magic = in.getInt();
    if (magic != MAGIC) {
      throw new PeerException(
          "magic=0x"
              + Integer.toHexString(magic)
              + " is not 0x"
              + Integer.toHexString(MAGIC)
              + ": not a Sluice peer, or another protocol version");
    }
    return in.get();
  }

  /** Decodes a message that must be a fetch: its magic, its kind, then the fetch. */
  public static Fetch readFetch(ByteBuffer in) throws PeerException {
    byte kind = kind(in);
    if (kind != FETCH) {
      throw new PeerException("kind=" + kind + " is not a fetch");
    }
    return getFetch(in);
  }

  /** Decodes a fetch after {@link #kind} returned {@link #FETCH}. */
  public static Fetch getFetch(ByteBuffer in) throws PeerException {
    try {
      long requestId = in.getLong();
      int nameLength = Short.toUnsignedInt(in.getShort());
      if (nameLength > MAX_DATASET_BYTES) {
        throw new PeerException("datasetLength=" + nameLength + " must be <= " + MAX_DATASET_BYTES);
      }
      byte[] name = new byte[nameLength];
      in.get(name);
      int count = in.getInt();
      if (count < 0 || count > MAX_IDS) {
        throw new PeerException("count=" + count + " must be in [0, " + MAX_IDS + "]");
      }
      long[] ids = new long[count];
      int[] lengths = new int[count];
      for (int i = 0; i < count; i++) {
        ids[i] = in.getLong();
        lengths[i] = in.getInt();
        if (lengths[i] < 0) {
          throw new PeerException("lengthBytes=" + lengths[i] + " of sample " + ids[i] + " is < 0");
        }
      }
      return new Fetch(requestId, new String(name, StandardCharsets.UTF_8), ids, lengths);
    } catch (BufferUnderflowException e) {
      throw new PeerException("fetch message truncated at byte " + in.position(), e);
    }
  }

  public static int answerHeaderBytes(int count) {
    return PREAMBLE_BYTES + 4 + 4 * count;
  }

  /** Writes an answer's header: which samples follow ({@code lengths[i] < 0}: not held). */
  public static void putAnswer(ByteBuffer out, long requestId, int[] lengths) {
    out.order(ByteOrder.LITTLE_ENDIAN);
    out.putInt(MAGIC).put(ANSWER).putLong(requestId).putInt(lengths.length);
    for (int length : lengths) {
      out.putInt(length);
    }
  }

  /** Decodes an answer's lengths after {@link #kind} returned {@link #ANSWER} and its requestId. */
  public static int[] getAnswerLengths(ByteBuffer in, int expectedCount) throws PeerException {
    try {
      int count = in.getInt();
      if (count != expectedCount) {
        throw new PeerException(
            "answer holds " + count + " samples, the fetch asked for " + expectedCount);
      }
      int[] lengths = new int[count];
      for (int i = 0; i < count; i++) {
        lengths[i] = in.getInt();
      }
      return lengths;
    } catch (BufferUnderflowException e) {
      throw new PeerException("answer truncated at byte " + in.position(), e);
    }
  }

  public static ByteBuffer error(long requestId, String message) {
    byte[] text = utf8(message.length() > 2000 ? message.substring(0, 2000) : message);
    ByteBuffer out = allocate(PREAMBLE_BYTES + 2 + text.length);
    out.putInt(MAGIC).put(ERROR).putLong(requestId).putShort((short) text.length).put(text);
    return out.flip();
  }

  /** Decodes an error's message after its requestId. */
  public static String getError(ByteBuffer in) {
    try {
      int length = Short.toUnsignedInt(in.getShort());
      byte[] text = new byte[Math.min(length, in.remaining())];
      in.get(text);
      return new String(text, StandardCharsets.UTF_8);
    } catch (BufferUnderflowException e) {
      return "(truncated error message)";
    }
  }

  private static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
