package io.sluice.format.wds;

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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * {@code wds}: a folder of WebDataset tar shards ({@code *.tar}, file-name order). A sample is a
 * run of consecutive regular members sharing a key, the member path up to the first dot of its base
 * name ({@code a/b/x.y.jpg}: key {@code a/b/x}, extension {@code y.jpg}). Columns: {@code __key__}
 * (utf8) and one nullable binary column per extension in the dataset, sorted by name.
 *
 * <p>Indexing writes {@code NAME.tar.sluice-idx} beside each shard ({@link ShardIndexFile}) and
 * records the dataset's extensions in the manifest parameter {@code extensions}. A shard whose
 * index file still matches its tar's length and mtime is not scanned again. No options.
 */
public final class WdsFormat implements ShardFormat {
  public static final String NAME = "wds";
  public static final String KEY_COLUMN = "__key__";

  /** Manifest parameter: the dataset's extensions, sorted, comma-joined ({@code %,} escaped). */
  public static final String EXTENSIONS_PARAM = "extensions";

  private static final String SAMPLE_ID_COLUMN = "sample_id"; // added by the daemon

  @Override
  public String name() {
    return NAME;
  }

  /** Extensions that would collide with a column Sluice adds. */
  static boolean isReservedColumn(String extension) {
    return extension.equals(KEY_COLUMN) || extension.equals(SAMPLE_ID_COLUMN);
  }

  @Override
  public IndexReport index(Path dir, Map<String, String> options, IndexProgress progress)
      throws IOException {
    if (!options.isEmpty()) {
      throw new IllegalArgumentException(
          "option "
              + options.keySet().iterator().next()
              + " is not an option of wds (it has none)");
    }
    List<Path> files = ShardFiles.list(dir, ".tar");
    List<ShardEntry> shards = new ArrayList<>(files.size());
    List<String> notes = new ArrayList<>();
    TreeSet<String> extensions = new TreeSet<>();
    long bytes = 0;
    for (int i = 0; i < files.size(); i++) {
      Path tar = files.get(i);
      String name = tar.getFileName().toString();
      FileStamp stamp = FileStamp.of(dir, name);
      String idxName = name + ShardIndexFile.SUFFIX;
      ShardIndex index = reusable(dir.resolve(idxName), stamp, notes);
      if (index == null) {
        ShardIndex.Builder b = new ShardIndex.Builder(tar, stamp.lengthBytes(), stamp.mtimeMs());
        TarScanner.scan(tar, stamp.lengthBytes(), b);
        index = b.build();
        ShardIndexFile.write(dir.resolve(idxName), index);
        if (index.skippedNoExtension() > 0 || index.skippedNonRegular() > 0) {
          notes.add(
              "file="
                  + tar
                  + ": skipped "
                  + index.skippedNoExtension()
                  + " members without an extension (no dot, or a hidden name) and "
                  + index.skippedNonRegular()
                  + " links/devices/fifos");
        }
      }
      extensions.addAll(index.extensions());
      shards.add(ShardEntry.of(stamp, index.samples(), List.of(FileStamp.of(dir, idxName))));
      bytes += stamp.lengthBytes();
      progress.shardIndexed(i + 1, files.size(), bytes);
    }
    Manifest fresh =
        new Manifest(NAME, Map.of(EXTENSIONS_PARAM, joinExtensions(extensions)), shards);
    if (fresh.totalSamples() == 0) {
      throw new DatasetFormatException(
          dir, -1, "at least one sample: no regular member with an extension in any *.tar");
    }
    boolean reused = Manifest.sameAsOnDisk(dir, fresh);
    if (!reused) {
      fresh.write(dir);
    }
    return new IndexReport(fresh, reused, notes);
  }

  /** The existing index of a tar if it is valid and was built from the tar as it is now. */
  private static ShardIndex reusable(Path idx, FileStamp tar, List<String> notes)
      throws IOException {
    if (!Files.isRegularFile(idx)) {
      return null;
    }
    ShardIndex old;
    try {
      old = ShardIndexFile.read(idx);
    } catch (DatasetFormatException e) {
      notes.add("rebuilt " + e.getMessage());
      return null;
    }
    return old.tarLengthBytes() == tar.lengthBytes() && old.tarMtimeMs() == tar.mtimeMs()
        ? old
        : null;
  }

  static String joinExtensions(Iterable<String> sorted) {
    StringBuilder b = new StringBuilder();
    for (String e : sorted) {
      if (!b.isEmpty()) {
        b.append(',');
      }
      b.append(e.replace("%", "%25").replace(",", "%2C"));
    }
    return b.toString();
  }

  /** The inverse of {@link #joinExtensions}; null when {@code joined} is not what it writes. */
  static List<String> splitExtensions(String joined) {
    List<String> out = new ArrayList<>();
    if (joined.isEmpty()) {
      return null;
    }
    for (String part : joined.split(",", -1)) {
      String e = part.replace("%2C", ",").replace("%25", "%");
      if (e.isEmpty() || !joinExtensions(List.of(e)).equals(part)) {
        return null;
      }
      out.add(e);
    }
    return out;
  }

  @Override
  public SampleSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException {
    Path manifestFile = dir.resolve(Manifest.FILE_NAME);
    String joined = manifest.params().get(EXTENSIONS_PARAM);
    List<String> extensions = joined == null ? null : splitExtensions(joined);
    if (extensions == null
        || !new ArrayList<>(new TreeSet<>(extensions)).equals(extensions)
        || extensions.stream().anyMatch(WdsFormat::isReservedColumn)) {
      throw new DatasetFormatException(
          manifestFile,
          -1,
          "param "
              + EXTENSIONS_PARAM
              + " to list distinct sorted extensions, found "
              + joined
              + "; re-run sluice dataset index");
    }
    manifest.checkUnchanged(dir);
    return new WdsSource(dir, manifest, extensions, backend);
  }
}
