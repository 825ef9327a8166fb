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
 * @param companions other files the shard needs (a Megatron .idx, Sluice's own tar index), with
 *     their stamps
 */
public record ShardEntry(
    String path, long samples, long lengthBytes, long mtimeMs, List<FileStamp> companions) {
  public ShardEntry {
    companions = List.copyOf(companions);
  }

  public ShardEntry(String path, long samples, long lengthBytes, long mtimeMs) {
    this(path, samples, lengthBytes, mtimeMs, List.of());
  }

  /** A shard whose main file has the given stamp. */
  public static ShardEntry of(FileStamp main, long samples, List<FileStamp> companions) {
    return new ShardEntry(main.path(), samples, main.lengthBytes(), main.mtimeMs(), companions);
  }

  public FileStamp stamp() {
    return new FileStamp(path, lengthBytes, mtimeMs);
  }

  /** Fails naming the file if the shard or any companion changed since indexing. */
  public void checkUnchanged(Path dir) throws IOException {
    stamp().checkUnchanged(dir);
    for (FileStamp c : companions) {
      c.checkUnchanged(dir);
    }
  }
}
