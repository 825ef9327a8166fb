package io.sluice.format;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * One shard as the manifest records it.
 *
 * @param path the shard's main file, relative to the dataset folder
 * @param samples samples in the shard
 * @param lengthBytes main file length when indexed
 * @param mtimeMs main file last-modified time when indexed
 * @param etag main object's ETag when indexed from an object store, else null
 * @param companions other files the shard needs (a Megatron .idx, Sluice's own tar index), with
 *     their stamps
 */
public record ShardEntry(
    String path,
    long samples,
    long lengthBytes,
    long mtimeMs,
    String etag,
    List<FileStamp> companions) {
  public ShardEntry {
    companions = List.copyOf(companions);
  }

  /** A local shard without companions. */
  public ShardEntry(String path, long samples, long lengthBytes, long mtimeMs) {
    this(path, samples, lengthBytes, mtimeMs, null, List.of());
  }

  /** A shard whose main file has the given stamp. */
  public static ShardEntry of(FileStamp main, long samples, List<FileStamp> companions) {
    return new ShardEntry(
        main.path(), samples, main.lengthBytes(), main.mtimeMs(), main.etag(), companions);
  }

  public FileStamp stamp() {
    return new FileStamp(path, lengthBytes, mtimeMs, etag);
  }

  /** Fails naming the file if the shard or any companion changed since indexing. */
  public void checkUnchanged(Path dir) throws IOException {
    stamp().checkUnchanged(dir);
    for (FileStamp c : companions) {
      c.checkUnchanged(dir);
    }
  }
}
