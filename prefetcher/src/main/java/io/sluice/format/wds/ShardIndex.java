package io.sluice.format.wds;

import io.sluice.format.DatasetFormatException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One tar shard's samples: for each, its key and its members (extension id, data offset, data
 * length). Immutable once built; read by many stream threads at once.
 *
 * <p>Sample {@code s} owns key bytes {@code [keyStart(s), keyEnd[s])} and members {@code
 * [memberStart(s), memberEnd[s])}; extension ids index {@link #extensions()}.
 */
final class ShardIndex {
  private final List<String> extensions;
  private final int[] keyEnd;
  private final byte[] keyBytes;
  private final int[] memberEnd;
  private final short[] memberExtension;
  private final long[] dataOffset;
  private final long[] dataLength;
  private final long tarLengthBytes;
  private final long tarMtimeMs;
  private final int skippedNoExtension;
  private final int skippedNonRegular;

  ShardIndex(
      List<String> extensions,
      int[] keyEnd,
      byte[] keyBytes,
      int[] memberEnd,
      short[] memberExtension,
      long[] dataOffset,
      long[] dataLength,
      long tarLengthBytes,
      long tarMtimeMs,
      int skippedNoExtension,
      int skippedNonRegular) {
    this.extensions = List.copyOf(extensions);
    this.keyEnd = keyEnd;
    this.keyBytes = keyBytes;
    this.memberEnd = memberEnd;
    this.memberExtension = memberExtension;
    this.dataOffset = dataOffset;
    this.dataLength = dataLength;
    this.tarLengthBytes = tarLengthBytes;
    this.tarMtimeMs = tarMtimeMs;
    this.skippedNoExtension = skippedNoExtension;
    this.skippedNonRegular = skippedNonRegular;
  }

  /** This shard's extensions in first-seen order. */
  List<String> extensions() {
    return extensions;
  }

  int samples() {
    return keyEnd.length;
  }

  int members() {
    return memberExtension.length;
  }

  int keyStart(int sample) {
    return sample == 0 ? 0 : keyEnd[sample - 1];
  }

  int keyEnd(int sample) {
    return keyEnd[sample];
  }

  byte[] keyBytes() {
    return keyBytes;
  }

  String key(int sample) {
    return new String(
        keyBytes, keyStart(sample), keyEnd[sample] - keyStart(sample), StandardCharsets.UTF_8);
  }

  int memberStart(int sample) {
    return sample == 0 ? 0 : memberEnd[sample - 1];
  }

  int memberEnd(int sample) {
    return memberEnd[sample];
  }

  int extension(int member) {
    return memberExtension[member] & 0xFFFF;
  }

  long dataOffset(int member) {
    return dataOffset[member];
  }

  long dataLength(int member) {
    return dataLength[member];
  }

  long tarLengthBytes() {
    return tarLengthBytes;
  }

  long tarMtimeMs() {
    return tarMtimeMs;
  }

  int skippedNoExtension() {
    return skippedNoExtension;
  }

  int skippedNonRegular() {
    return skippedNonRegular;
  }

  // Package-private raw views for the file codec.
  int[] rawKeyEnd() {
    return keyEnd;
  }

  int[] rawMemberEnd() {
    return memberEnd;
  }

  short[] rawMemberExtension() {
    return memberExtension;
  }

  long[] rawDataOffset() {
    return dataOffset;
  }

  long[] rawDataLength() {
    return dataLength;
  }

  /**
   * Groups a tar's regular members into samples as {@link TarScanner} reports them: consecutive
   * members sharing a key (the path up to the first dot of its base name) form one sample; the rest
   * of the base name is the extension. Single-threaded.
   */
  static final class Builder implements TarScanner.MemberSink {
    static final int MAX_EXTENSIONS = 0xFFFF;

    private final Path tar;
    private final long tarLengthBytes;
    private final long tarMtimeMs;
    private final Map<String, Integer> extensionIds = new HashMap<>();
    private final List<String> extensions = new ArrayList<>();
    private int[] keyEnd = new int[1024];
    private byte[] keyBytes = new byte[16 * 1024];
    private int keyLength;
    private int[] memberEnd = new int[1024];
    private short[] memberExtension = new short[4096];
    private long[] dataOffset = new long[4096];
    private long[] dataLength = new long[4096];
    private long[] memberHeader = new long[4096]; // for error messages only
    private int samples;
    private int members;
    private String currentKey;
    private int skippedNoExtension;
    private int skippedNonRegular;

    Builder(Path tar, long tarLengthBytes, long tarMtimeMs) {
      this.tar = tar;
      this.tarLengthBytes = tarLengthBytes;
      this.tarMtimeMs = tarMtimeMs;
    }

    @Override
    public void member(String path, long headerOffset, long offset, long sizeBytes) {
      int slash = path.lastIndexOf('/');
      int dot = path.indexOf('.', slash + 1);
      if (dot <= slash + 1 || dot == path.length() - 1) {
        // No extension ("README"), a hidden name (".x", "._x.jpg"), or an empty one ("x."):
        // WebDataset skips these too.
        skippedNoExtension++;
        return;
      }
      String key = path.substring(0, dot);
      String ext = path.substring(dot + 1);
      if (WdsFormat.isReservedColumn(ext)) {
        throw new DatasetFormatException(
            tar,
            headerOffset,
            "an extension other than '"
                + ext
                + "' (member "
                + path
                + "; that name is a column Sluice adds itself)");
      }
      Integer id = extensionIds.get(ext);
      if (id == null) {
        if (extensions.size() == MAX_EXTENSIONS) {
          throw new DatasetFormatException(
              tar, headerOffset, "at most " + MAX_EXTENSIONS + " distinct extensions per shard");
        }
        id = extensions.size();
        extensionIds.put(ext, id);
        extensions.add(ext);
      }
      if (key.equals(currentKey)) {
        for (int m = samples == 1 ? 0 : memberEnd[samples - 2]; m < members; m++) {
          if (memberExtension[m] == id.shortValue()) {
            throw new DatasetFormatException(
                tar,
                headerOffset,
                "one member per extension per sample, found a second key="
                    + key
                    + " extension="
                    + ext
                    + " (the first has its header at offset "
                    + memberHeader[m]
                    + ")");
          }
        }
      } else {
        startSample(key, headerOffset);
      }
      if (members == Integer.MAX_VALUE - 8) {
        throw new DatasetFormatException(tar, headerOffset, "fewer members in one shard");
      }
      if (members == memberExtension.length) {
        int n = members * 2;
        memberExtension = Arrays.copyOf(memberExtension, n);
        dataOffset = Arrays.copyOf(dataOffset, n);
        dataLength = Arrays.copyOf(dataLength, n);
        memberHeader = Arrays.copyOf(memberHeader, n);
      }
      memberExtension[members] = id.shortValue();
      dataOffset[members] = offset;
      dataLength[members] = sizeBytes;
      memberHeader[members] = headerOffset;
      members++;
      memberEnd[samples - 1] = members;
    }

    private void startSample(String key, long headerOffset) {
      byte[] k = key.getBytes(StandardCharsets.UTF_8);
      if (k.length > Integer.MAX_VALUE - 8 - keyLength) {
        throw new DatasetFormatException(tar, headerOffset, "under 2 GiB of keys in one shard");
      }
      if (keyLength + k.length > keyBytes.length) {
        keyBytes =
            Arrays.copyOf(
                keyBytes, (int) Math.min(Integer.MAX_VALUE - 8, 2L * (keyLength + k.length)));
      }
      System.arraycopy(k, 0, keyBytes, keyLength, k.length);
      keyLength += k.length;
      if (samples == keyEnd.length) {
        keyEnd = Arrays.copyOf(keyEnd, samples * 2);
        memberEnd = Arrays.copyOf(memberEnd, samples * 2);
      }
      keyEnd[samples] = keyLength;
      memberEnd[samples] = members;
      samples++;
      currentKey = key;
    }

    @Override
    public void skippedNonRegular(long headerOffset) {
      skippedNonRegular++;
    }

    ShardIndex build() {
      return new ShardIndex(
          extensions,
          Arrays.copyOf(keyEnd, samples),
          Arrays.copyOf(keyBytes, keyLength),
          Arrays.copyOf(memberEnd, samples),
          Arrays.copyOf(memberExtension, members),
          Arrays.copyOf(dataOffset, members),
          Arrays.copyOf(dataLength, members),
          tarLengthBytes,
          tarMtimeMs,
          skippedNoExtension,
          skippedNonRegular);
    }
  }
}
