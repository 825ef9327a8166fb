package io.sluice.format.arrow;

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

/**
 * {@code arrow}: a folder of Arrow IPC shards ({@code *.arrow}, {@code *.feather}, {@code *.ipc},
 * {@code *.arrows}), either the IPC file format (Feather v2) or the IPC stream format, told apart
 * by the {@code ARROW1} magic. A sample is a row; the served columns are the files' columns, which
 * every shard must share. Indexing writes {@code NAME.sluice-idx} beside each shard with its record
 * batches' byte ranges and row counts, so reading a row reads only its batch. No options.
 */
public final class ArrowIpcFormat implements ShardFormat {
  public static final String NAME = "arrow";
  static final List<String> SUFFIXES = List.of(".arrow", ".feather", ".ipc", ".arrows");

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public IndexReport index(Path dir, Map<String, String> options, IndexProgress progress)
      throws IOException {
    if (!options.isEmpty()) {
      throw new IllegalArgumentException(
          "option "
              + options.keySet().iterator().next()
              + " is not an option of arrow (it has none)");
    }
    List<Path> files = ShardFiles.list(dir, SUFFIXES.toArray(String[]::new));
    List<ShardEntry> shards = new ArrayList<>(files.size());
    List<String> notes = new ArrayList<>();
    ShardIndex first = null;
    Path firstFile = null;
    long bytes = 0;
    for (int i = 0; i < files.size(); i++) {
      Path f = files.get(i);
      FileStamp stamp = FileStamp.of(dir, f.getFileName().toString());
      Path idx = IndexFile.of(f);
      ShardIndex si = reusable(idx, stamp);
      if (si == null) {
        IpcScanner.Result r = IpcScanner.scan(f, stamp);
        si = r.index();
        if (r.note() != null) {
          notes.add(r.note());
        }
        IndexFile.write(idx, si);
      } else {
        IpcSchema.of(si.schema(), f, si.schemaOffset());
      }
      if (first == null) {
        first = si;
        firstFile = f;
      } else if (!first.schema().equals(si.schema())) {
        throw schemaMismatch(f, si, firstFile, first);
      }
      FileStamp idxStamp = FileStamp.of(dir, idx.getFileName().toString());
      shards.add(ShardEntry.of(stamp, si.totalRows(), List.of(idxStamp)));
      bytes += stamp.lengthBytes();
      progress.shardIndexed(i + 1, files.size(), bytes);
    }
    Manifest fresh = new Manifest(NAME, Map.of(), shards);
    if (fresh.totalSamples() == 0) {
      throw new DatasetFormatException(dir, -1, "no rows: every shard's record batches are empty");
    }
    boolean reused = Manifest.sameAsOnDisk(dir, fresh);
    if (!reused) {
      fresh.write(dir);
    }
    return new IndexReport(fresh, reused, notes);
  }

  /** The index beside a shard when it is intact and was made from the shard as it is now. */
  private static ShardIndex reusable(Path idx, FileStamp stamp) throws IOException {
    if (!Files.isRegularFile(idx)) {
      return null;
    }
    try {
      ShardIndex si = IndexFile.read(idx);
      return si.mainLengthBytes() == stamp.lengthBytes() && si.mainMtimeMs() == stamp.mtimeMs()
          ? si
          : null;
    } catch (DatasetFormatException e) {
      return null; // damaged or from another version: scan again and replace it
    }
  }

  static DatasetFormatException schemaMismatch(
      Path file, ShardIndex index, Path firstFile, ShardIndex first) {
    return new DatasetFormatException(
        file,
        index.schemaOffset(),
        "schema differs from the first shard's ("
            + firstFile.getFileName()
            + "); every shard must have the same columns. First: "
            + IpcSchema.brief(first.schema())
            + "; this file: "
            + IpcSchema.brief(index.schema()));
  }

  @Override
  public SampleSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException {
    manifest.checkUnchanged(dir);
    return ArrowIpcSource.open(dir, manifest, backend);
  }
}
