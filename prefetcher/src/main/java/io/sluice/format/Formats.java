package io.sluice.format;

import io.sluice.format.arrow.ArrowIpcFormat;
import io.sluice.format.megatron.MegatronFormat;
import io.sluice.format.tokens.TokensFormat;
import io.sluice.format.wds.WdsFormat;
import io.sluice.read.ReadBackend;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** The shard formats this build knows, by name. */
public final class Formats {
  private static final List<ShardFormat> ALL =
      List.of(new TokensFormat(), new MegatronFormat(), new WdsFormat(), new ArrowIpcFormat());

  private Formats() {}

  public static List<String> names() {
    return ALL.stream().map(ShardFormat::name).toList();
  }

  /** The format called {@code name}; an unknown name fails listing the known ones. */
  public static ShardFormat byName(String name) {
    for (ShardFormat f : ALL) {
      if (f.name().equals(name)) {
        return f;
      }
    }
    throw new IllegalArgumentException(
        "format=" + name + " must be one of " + String.join(", ", names()));
  }

  /** Opens an indexed folder with the format its manifest names. */
  public static SampleSource open(Path dir, ReadBackend backend) throws IOException {
    Manifest m = Manifest.read(dir);
    ShardFormat f;
    try {
      f = byName(m.format());
    } catch (IllegalArgumentException e) {
      throw new DatasetFormatException(dir.resolve(Manifest.FILE_NAME), -1, e.getMessage(), e);
    }
    return f.open(dir, m, backend);
  }
}
