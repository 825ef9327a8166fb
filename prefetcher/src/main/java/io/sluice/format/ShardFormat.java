package io.sluice.format;

import io.sluice.read.ReadBackend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A shard format: indexes a dataset folder into a {@link Manifest} and opens an indexed folder for
 * reading. One package per format; {@link Formats} lists them. Implementations are stateless.
 */
public interface ShardFormat {
  /** The name {@code --format} and the manifest use. */
  String name();

  /**
   * Indexes {@code dir}: finds the shards (file-name order), counts samples, writes any compact
   * per-shard index files, then {@code dir/sluice-manifest.json}. An unchanged folder reuses what
   * is valid. Bad input fails with a {@link DatasetFormatException} naming file and offset.
   *
   * @param options format options such as {@code dtype}, {@code seq_len}; unknown keys are rejected
   */
  IndexReport index(Path dir, Map<String, String> options, IndexProgress progress)
      throws IOException;

  /** Opens an indexed folder whose manifest names this format; refuses changed shards. */
  SampleSource open(Path dir, Manifest manifest, ReadBackend backend) throws IOException;
}
