package io.sluice.format.tokens;

import io.sluice.format.DatasetFormatException;
import io.sluice.format.FileStamp;
import io.sluice.format.IndexProgress;
import io.sluice.format.IndexReport;
import io.sluice.format.Manifest;
import io.sluice.format.SampleSource;
import io.sluice.format.ShardEntry;
import io.sluice.format.ShardFiles;
import io.sluice.format.ShardFormat;
import io.sluice.read.ReadBackend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code tokens}: a folder of flat token arrays ({@code *.bin}, little-endian, no header, as
 * numpy's {@code tofile} writes them). Sample i of a shard is tokens [i*L, (i+1)*L); a trailing
 * remainder is ignored and reported. Options: {@code dtype} (uint16, uint32), {@code seq_len}.
 */
public final class TokensFormat implements ShardFormat {
  public static final String NAME = "tokens";
  private static final Set<String> OPTIONS = Set.of("dtype", "seq_len");

  /** Longest sample: keeps one sample's bytes well inside an int and a batch buffer sane. */
  public static final int MAX_SEQ_LEN = 1 << 24;

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public IndexReport index(Path dir, Map<String, String> options, IndexProgress progress)
      throws IOException {
    for (String k : options.keySet()) {
      if (!OPTIONS.contains(k)) {
        throw new IllegalArgumentException(
            "option " + k + " is not one of tokens' options (dtype, seq_len)");
      }
    }
    TokenDtype dtype = TokenDtype.parse(options.getOrDefault("dtype", "uint16"));
    String seq = options.get("seq_len");
    if (seq == null) {
      throw new IllegalArgumentException("seq_len is required for format tokens");
    }
    int seqLen;
    try {
      seqLen = Integer.parseInt(seq);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("seq_len=" + seq + " must be an integer", e);
    }
    return index(dir, dtype, seqLen, progress);
  }

  /** Indexes {@code dir}, writes its manifest, and says how much was ignored as remainder. */
  public static IndexReport index(Path dir, TokenDtype dtype, int seqLen, IndexProgress progress)
      throws IOException {
    if (seqLen < 1 || seqLen > MAX_SEQ_LEN) {
      throw new IllegalArgumentException(
          "seq_len=" + seqLen + " must be in [1, " + MAX_SEQ_LEN + "]");
    }
    List<Path> files = ShardFiles.list(dir, ".bin");
    List<ShardEntry> shards = new ArrayList<>(files.size());
    List<String> notes = new ArrayList<>();
    long sampleBytes = (long) seqLen * dtype.widthBytes();
    long bytes = 0;
    for (int i = 0; i < files.size(); i++) {
      Path f = files.get(i);
      FileStamp stamp = FileStamp.of(dir, f.getFileName().toString());
      long len = stamp.lengthBytes();
      if (len % dtype.widthBytes() != 0) {
        throw new DatasetFormatException(
            f,
            len - len % dtype.widthBytes(),
            "length "
                + len
                + " is not a multiple of dtype="
                + dtype.wireName()
                + " width "
                + dtype.widthBytes()
                + " (truncated, or another dtype?)");
      }
      long remainder = (len % sampleBytes) / dtype.widthBytes();
      if (remainder > 0) {
        notes.add(
            "file="
                + f
                + ": "
                + remainder
                + " trailing tokens after the last whole sample of seq_len="
                + seqLen
                + " ignored");
      }
      shards.add(ShardEntry.of(stamp, len / sampleBytes, List.of()));
      bytes += len;
      progress.shardIndexed(i + 1, files.size(), bytes);
    }
    Manifest fresh =
        new Manifest(
            NAME, Map.of("dtype", dtype.wireName(), "seq_len", Integer.toString(seqLen)), shards);
    if (fresh.totalSamples() == 0) {
      throw new DatasetFormatException(
          dir,
          -1,
          "no whole sample: every shard is shorter than seq_len="
              + seqLen
              + " tokens of "
              + dtype.wireName());
    }
    boolean reused = Manifest.sameAsOnDisk(dir, fresh);
    if (!reused) {
      fresh.write(dir);
    }
    return new IndexReport(fresh, reused, notes);
  }

  @Override
  public SampleSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException {
    Path manifestFile = dir.resolve(Manifest.FILE_NAME);
    TokenDtype dtype;
    int seqLen;
    try {
      dtype = TokenDtype.parse(manifest.param("dtype"));
      seqLen = Integer.parseInt(manifest.param("seq_len"));
    } catch (RuntimeException e) {
      throw new DatasetFormatException(manifestFile, -1, "bad tokens params: " + e.getMessage(), e);
    }
    if (seqLen < 1 || seqLen > MAX_SEQ_LEN) {
      throw new DatasetFormatException(
          manifestFile, -1, "seq_len=" + seqLen + " must be in [1, " + MAX_SEQ_LEN + "]");
    }
    manifest.checkUnchanged(dir);
    long sampleBytes = (long) seqLen * dtype.widthBytes();
    for (ShardEntry s : manifest.shards()) {
      if (s.samples() > s.lengthBytes() / sampleBytes) {
        throw new DatasetFormatException(
            dir.resolve(s.path()),
            -1,
            "manifest says samples="
                + s.samples()
                + " but length_bytes="
                + s.lengthBytes()
                + " holds only "
                + s.lengthBytes() / sampleBytes
                + " of seq_len="
                + seqLen
                + " "
                + dtype.wireName());
      }
    }
    return new TokensSource(dir, manifest, dtype, seqLen, backend);
  }
}
