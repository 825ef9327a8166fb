package io.sluice.format;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/** Finding a dataset folder's shards: what every format's index step starts with. */
public final class ShardFiles {
  private ShardFiles() {}

  /**
   * The regular files of {@code dir} whose names end in one of {@code suffixes}, in file-name order
   * (the order that gives sample ids). A folder that is not one, or holds no such file, is a {@link
   * DatasetFormatException} naming it.
   */
  public static List<Path> list(Path dir, String... suffixes) throws IOException {
    if (!Files.isDirectory(dir)) {
      throw new DatasetFormatException(dir, -1, "not a directory");
    }
    List<Path> files;
    try (Stream<Path> s = Files.list(dir)) {
      files =
          s.filter(p -> hasSuffix(p.getFileName().toString(), suffixes) && Files.isRegularFile(p))
              .sorted()
              .toList();
    }
    if (files.isEmpty()) {
      throw new DatasetFormatException(
          dir, -1, "no " + describe(suffixes) + " shards in this folder");
    }
    return files;
  }

  private static boolean hasSuffix(String name, String[] suffixes) {
    for (String s : suffixes) {
      if (name.endsWith(s)) {
        return true;
      }
    }
    return false;
  }

  /** "*.a", "*.a or *.b", "*.a, *.b or *.c". */
  private static String describe(String[] suffixes) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < suffixes.length; i++) {
      if (i > 0) {
        b.append(i == suffixes.length - 1 ? " or " : ", ");
      }
      b.append('*').append(suffixes[i]);
    }
    return b.toString();
  }
}
